//! The stage chain, and what its stages share.
//!
//! The chain is data: [`CHAIN`] lists each stage with its key function and
//! its run function, each stage reading the finished output of the row
//! before it, and [`run`] is the only code that knows the order (see
//! [`chain`]). A stage reads what came before it through its input's
//! survivors and [`records`], never through another stage's functions, so
//! adding a stage is one row, its module, its config section and its record
//! type. What a stage is, and is handed, is in [`spec`].
//!
//! Each stage of a run lives in `raw/runs/<run>/<stage>/`. A stage is done
//! when its `report.json` exists with the key of its current inputs; until
//! then its journal holds the items already finished. A stage whose inputs
//! changed (another key) starts over; one whose key matches does no work.
//!
//! People's decisions (`curated/reviews.jsonl`, see [`siuo_core::review`])
//! apply to every stage here, in [`candidates`] (an edit adds a revision)
//! and [`survivors`] (an approval lets a held candidate pass; a rejection
//! passes none), and their digest is part of every key after the first.

pub mod chain;
pub mod check;
pub mod dedupe;
pub mod difficulty;
pub mod export;
pub mod generate;
pub mod records;
pub mod spec;
pub mod verify;

pub use chain::{CHAIN, current_run, find, names, run};
pub use records::{
    VERDICTS, candidates, finish_journaled, finish_with_verdicts, for_each_record, pending,
    records, survivors,
};
pub use siuo_core::stage_dir::{StageDir, StageReport, count_reasons};
pub use spec::{StageInput, StageSpec, Upstream, Vouches};
