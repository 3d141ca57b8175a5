//! A panel of target models answering cases and judges grading the
//! answers, shared by the difficulty stage (on a run's candidates) and
//! `siuo eval` (on a release): its settings ([`config`]), the asking and its
//! records ([`asking`]), the grading protocol ([`protocol`]), the scores
//! ([`score`]) and a case's difficulty ([`difficulty`]).

pub mod asking;
pub mod config;
pub mod difficulty;
pub mod protocol;
pub mod score;
