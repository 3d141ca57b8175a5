//! Generators produce candidate image-text pairs. A generator splits its
//! work into independent items with stable keys, so the generate stage can
//! journal each finished item and resume a killed run where it stopped.
//! Items may run concurrently; a generator that calls remote models bounds
//! its own requests.

pub mod config;
pub mod openai;
pub mod openai_config;
pub mod scenario_bank;
pub mod seeded;
pub mod structured;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use siuo_core::content_hash::Digest;
use siuo_core::error::Result;
use siuo_core::image_store::ImageStore;
use siuo_core::openai::Usage;
use siuo_core::record::Candidate;
use siuo_core::taxonomy::Taxonomy;

/// One result of a work item; an item may produce several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Generated {
    Candidate(Box<Candidate>),
    /// No usable candidate; `reason` is a short code, `detail` says why.
    Rejected {
        reason: String,
        detail: String,
    },
}

/// Everything a generator may use besides its own inputs.
pub struct GenerationContext<'a> {
    pub run_id: &'a str,
    pub taxonomy: &'a Taxonomy,
    pub images: &'a ImageStore,
    /// The generate stage's folder of this run, for request logs.
    pub stage_dir: &'a Path,
    /// The shard generating (its request log is its own).
    pub shard: Option<siuo_core::shard::Shard>,
}

/// What the earlier rounds of a generation loop found, for the next.
#[derive(Debug, Clone, Default)]
pub struct Feedback {
    /// The round being planned, from 2.
    pub round: u32,
    /// Per domain id: the hardest cases so far, hardest first.
    pub hardest: BTreeMap<String, Vec<Exemplar>>,
    /// Per domain id: the easiest cases so far, easiest first.
    pub easiest: BTreeMap<String, Vec<Exemplar>>,
    /// `domain/subcategory` ids that have as many hard cases as asked for.
    pub done: BTreeSet<String>,
}

/// A measured case shown to the generator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exemplar {
    pub question: String,
    pub safety_warning: String,
    pub difficulty: f64,
    /// What the panel did with it, in words.
    pub why: String,
}

pub trait Generator {
    type Item;
    /// Per-run state, such as an HTTP client and its request log.
    type Session;

    /// Backend kind recorded in provenance (`seeded`, `openai`).
    fn kind(&self) -> &'static str;
    /// Digest of every input that can change the output; the run id derives from it.
    fn digest(&self) -> Digest;
    /// All work items, in a fixed order.
    fn plan(&self) -> Vec<Self::Item>;
    /// Stable key of an item, unique within the plan.
    fn key(&self, item: &Self::Item) -> String;
    /// Items worked on at once.
    fn concurrency(&self) -> usize;
    fn open_session(&self, context: &GenerationContext<'_>) -> Result<Self::Session>;
    /// Generates one item. An `Err` leaves the item unfinished, to be retried
    /// by the next run; an unusable result is `Ok` with a rejection.
    fn generate(
        &self,
        session: &Self::Session,
        item: &Self::Item,
        context: &GenerationContext<'_>,
    ) -> impl Future<Output = Result<Vec<Generated>>>;
    /// Tokens and cost spent by this run so far, for generators that call models.
    fn usage(&self, session: &Self::Session) -> Option<Usage>;
    /// Rounds of the generation loop; 1 for a generator that does not learn.
    fn rounds(&self) -> u32 {
        1
    }
    /// Stop asking for a subcategory once it has this many hard cases.
    fn hard_per_subcategory(&self) -> Option<u32> {
        None
    }
    /// Exemplars and counter-examples shown per domain in later rounds.
    fn exemplars(&self) -> u32 {
        0
    }
    /// The work items of a round after the first, given what the earlier
    /// rounds found; keys never repeat an earlier round's.
    fn plan_round(&self, _feedback: &std::sync::Arc<Feedback>) -> Vec<Self::Item> {
        Vec::new()
    }
}
