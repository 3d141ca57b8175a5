//! What a stage is to the chain ([`StageSpec`]) and what the chain hands
//! it when it runs ([`StageInput`]): the run, its key, its finished
//! upstream, its folder, the shard it works on, and the stages before it.

use crate::project::Project;
use siuo_core::content_hash::Digest;
use siuo_core::error::Result;
use siuo_core::release::Vouch;
use siuo_core::shard::Shard;
use siuo_core::stage_dir::{StageDir, StageReport};

/// One stage of the chain.
pub struct StageSpec {
    /// Its name: the command (`siuo <name>`) and its folder in a run.
    pub name: &'static str,
    /// One line for `siuo --help`.
    pub about: &'static str,
    /// Whether it writes a verdict with a decision per candidate
    /// ([`super::records::VERDICTS`]); only kept candidates reach the
    /// stages after it.
    pub filters: bool,
    /// Digest of everything the stage's output depends on, given the key
    /// of the row before it (`None` for the first stage, which names the run).
    pub key: fn(&Project, Option<&Digest>) -> Result<Digest>,
    /// Does the work; the chain has checked that the upstream is done and
    /// that this stage is not.
    pub run: fn(&Project, &StageInput) -> Result<StageReport>,
    /// For a stage that vouches for cases: what the release records of each
    /// candidate of a run it kept, by candidate id.
    pub vouches: Option<Vouches>,
    /// Whether its items are independent, so that `--shard I/N` may split
    /// them over processes (see [`siuo_core::shard`]); a stage that compares
    /// items with each other (dedupe) or writes one release (export) is not.
    pub shardable: bool,
}

/// A vouching stage's record of a run's kept candidates: calls the
/// callback with each candidate id and its vouch, one at a time.
pub type Vouches = fn(&Project, &str, &mut dyn FnMut(String, Vouch) -> Result<()>) -> Result<()>;

/// What the chain hands a stage when it runs it.
pub struct StageInput {
    pub run_id: String,
    /// The stage's key, from [`StageSpec::key`].
    pub key: Digest,
    /// The finished upstream; `None` for the first stage.
    pub upstream: Option<Upstream>,
    /// Its folder in the run, which knows the shard too.
    pub dir: StageDir,
    /// The part of the items this invocation works on (`--shard I/N`);
    /// `None` for all of them.
    pub shard: Option<Shard>,
    /// The stages before it in the chain, in order: whose verdicts filter
    /// its candidates, and whose vouches a release records.
    pub before: &'static [StageSpec],
}

/// A stage's finished upstream.
pub struct Upstream {
    pub name: &'static str,
    /// The key this stage's key was computed from.
    pub key: Digest,
    pub report: StageReport,
}

impl StageInput {
    /// The filtering stages before this one: whose verdicts decide what it
    /// works on (see `records::survivors`).
    pub fn filters(&self) -> impl Iterator<Item = &'static str> {
        self.before.iter().filter(|s| s.filters).map(|s| s.name)
    }

    /// Whether this invocation works on the item with this id.
    pub fn owns(&self, id: &str) -> bool {
        self.shard.is_none_or(|shard| shard.contains(id))
    }
}
