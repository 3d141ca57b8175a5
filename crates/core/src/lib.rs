//! The foundation of siuo: what every layer above shares and none of it
//! decides. The one error type ([`error::Error`]), the typed records stages
//! exchange on disk ([`record`]), stable hashing ([`content_hash`]),
//! crash-safe files and journals, the OpenAI-compatible transport
//! ([`openai`]), the taxonomy, the release format ([`release`]) and the
//! review ledger ([`review`]).
//!
//! It never names a stage, a backend or a command: those are in
//! `siuo-chain` and `siuo`, which depend on this crate and never the other
//! way round.

pub mod atomic_file;
pub mod band;
pub mod calibration_report;
pub mod content_hash;
pub mod error;
pub mod html;
pub mod image_store;
pub mod input_file;
pub mod journal;
pub mod model_file;
pub mod openai;
pub mod parallel;
pub mod pixels;
pub mod progress;
pub mod prompt_template;
pub mod quotation;
pub mod random;
pub mod record;
pub mod release;
pub mod review;
pub mod shard;
pub mod stage_dir;
pub mod suggestion;
pub mod taxonomy;
pub mod text_normal;
pub mod timestamp;
