//! Generators produce candidate image-text pairs. A generator splits its
//! work into independent items with stable keys, so the generate stage can
//! journal each finished item and resume a killed run where it stopped.

pub mod scenario_bank;
pub mod seeded;

use serde::{Deserialize, Serialize};

use crate::content_hash::Digest;
use crate::error::Result;
use crate::image_store::ImageStore;
use crate::record::Candidate;
use crate::taxonomy::Taxonomy;

/// What one work item produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Generated {
    Candidate(Box<Candidate>),
    /// The item made no usable candidate; `reason` is a short code.
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
}

pub trait Generator {
    type Item;

    /// Backend kind recorded in provenance (`seeded`, …).
    fn kind(&self) -> &'static str;
    /// Digest of every input that can change the output; the run id derives from it.
    fn digest(&self) -> Digest;
    /// All work items, in a fixed order.
    fn plan(&self) -> Vec<Self::Item>;
    /// Stable key of an item, unique within the plan.
    fn key(&self, item: &Self::Item) -> String;
    fn generate(&self, item: &Self::Item, context: &GenerationContext<'_>) -> Result<Generated>;
}
