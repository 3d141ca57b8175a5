//! The review desk: the queue of what to review ([`queue`]) and the local
//! web desk that serves it ([`desk`]), writing the ledger of
//! `siuo_core::review`.
//!
//! The chain applies the ledger to every stage: an approved candidate a
//! stage held for review passes it, a rejected or conflicting one passes
//! none, and an edited one is replaced by its revision, a new candidate
//! that every stage checks again.

pub mod desk;
pub mod queue;
