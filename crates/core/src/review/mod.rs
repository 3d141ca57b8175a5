//! The people's decisions: the review ledger ([`ledger`]), how far the
//! reviewers agree ([`agreement`]) and the review settings ([`config`]).
//! The chain applies the ledger; the review desk (in `siuo`) writes it.

pub mod agreement;
pub mod config;
pub mod ledger;

pub use ledger::{Ledger, Verdict};
