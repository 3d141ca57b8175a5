//! Config of the text classifiers (`check.text`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::remote_classifier::config::RemoteClassifierConfig;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TextClassifierConfig {
    /// Explicit-harm phrases per harm category, matched on normalized whole words.
    Lexicon(LexiconConfig),
    /// Embedded all-MiniLM-L6-v2 embeddings against labeled exemplars (offline, CPU).
    Minilm(MiniLmConfig),
    /// OpenAI's `/v1/moderations` (omni-moderation): per-category scores.
    OpenaiModeration(RemoteClassifierConfig),
    /// Llama Guard 3 on an OpenAI-compatible server (vLLM), prompted in its
    /// own format through `/v1/completions`.
    LlamaGuard(RemoteClassifierConfig),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LexiconConfig {
    /// YAML file of phrases per harm category.
    #[serde(default = "default_lexicon")]
    pub path: PathBuf,
}

fn default_lexicon() -> PathBuf {
    "prompts/lexicon.yaml".into()
}

impl Default for LexiconConfig {
    fn default() -> Self {
        LexiconConfig {
            path: default_lexicon(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MiniLmConfig {
    /// YAML exemplar bank: `unsafe` requests per harm category, `safe` questions.
    #[serde(default = "default_exemplars")]
    pub exemplars: PathBuf,
    /// Nearest exemplars averaged per category and for the safe side.
    #[serde(default = "default_neighbours")]
    pub neighbours: u32,
    /// Category score (0-1) at or above which the text is unsafe.
    #[serde(default = "default_minilm_threshold")]
    pub threshold: f64,
    /// Optional lower score from which the text is held for human review.
    #[serde(default)]
    pub review_threshold: Option<f64>,
}

/// Largest `neighbours`: more than the smallest exemplar category holds
/// would average in exemplars of nothing, and reject every candidate.
pub const MAX_NEIGHBOURS: u32 = 32;

fn default_exemplars() -> PathBuf {
    "prompts/classifiers/text-exemplars.yaml".into()
}
fn default_neighbours() -> u32 {
    8
}
/// Reject outright only clearly unsafe text (a cosine margin of about
/// 0.09); hold the borderline band from a margin of 0 for review, so a
/// benign SIUO question near the boundary is not thrown away.
fn default_minilm_threshold() -> f64 {
    0.9
}
fn default_minilm_review_threshold() -> Option<f64> {
    Some(0.5)
}

impl Default for MiniLmConfig {
    fn default() -> Self {
        MiniLmConfig {
            exemplars: default_exemplars(),
            neighbours: default_neighbours(),
            threshold: default_minilm_threshold(),
            review_threshold: default_minilm_review_threshold(),
        }
    }
}

siuo_core::band::band_of!(MiniLmConfig);

impl TextClassifierConfig {
    /// Problems of one `check.text` entry at `place`.
    pub fn problems(&self, place: &str) -> Vec<String> {
        match self {
            TextClassifierConfig::Lexicon(_) => Vec::new(),
            TextClassifierConfig::Minilm(m) => {
                let mut problems = m.band().problems(place);
                if !(1..=MAX_NEIGHBOURS).contains(&m.neighbours) {
                    problems.push(format!(
                        "{place}: neighbours must be between 1 and {MAX_NEIGHBOURS}"
                    ));
                }
                problems
            }
            TextClassifierConfig::OpenaiModeration(r) | TextClassifierConfig::LlamaGuard(r) => {
                r.problems(place)
            }
        }
    }
}
