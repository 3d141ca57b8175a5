//! The `dedupe` section: exact or near-duplicate matching and its radii.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DedupeConfig {
    /// A case is a duplicate when its normalized question and its decoded
    /// pixels both match a case already kept, in this run or any release.
    Exact(ExactDedupeConfig),
    /// A case is a duplicate when its question and its image are both
    /// near-duplicates of one case already kept (perceptual image hash,
    /// mirror included; MinHash of the question), in this run or any release.
    Near(NearDedupeConfig),
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig::Near(NearDedupeConfig::default())
    }
}

/// Hamming radius of near-duplicate images; see `similarity::image_hash`'s
/// test for the distances of each edit kind and of distinct photographs.
pub const DEFAULT_IMAGE_DISTANCE: u32 = 10;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NearDedupeConfig {
    /// Also compare against every release in `curated/`.
    #[serde(default = "yes")]
    pub against_releases: bool,
    /// Images whose 64-bit pHashes (or that of one's mirror) differ in at
    /// most this many bits are near-duplicates.
    #[serde(default = "default_image_distance")]
    pub image_max_distance: u32,
    /// Questions whose estimated Jaccard similarity of character 5-grams
    /// (after normalization) is at least this are near-duplicates.
    #[serde(default = "default_question_similarity")]
    pub question_min_similarity: f64,
    /// Kept cases that may share one image (near-duplicates counted), each
    /// with a question that is not a near-duplicate of the others'.
    #[serde(default = "default_max_image_uses")]
    pub max_image_uses: u32,
}

fn default_image_distance() -> u32 {
    DEFAULT_IMAGE_DISTANCE
}
fn default_question_similarity() -> f64 {
    0.6
}
fn default_max_image_uses() -> u32 {
    4
}

impl Default for NearDedupeConfig {
    fn default() -> Self {
        NearDedupeConfig {
            against_releases: true,
            image_max_distance: default_image_distance(),
            question_min_similarity: default_question_similarity(),
            max_image_uses: default_max_image_uses(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExactDedupeConfig {
    /// Also compare against every release in `curated/`.
    #[serde(default = "yes")]
    pub against_releases: bool,
}

fn yes() -> bool {
    true
}

impl Default for ExactDedupeConfig {
    fn default() -> Self {
        ExactDedupeConfig {
            against_releases: true,
        }
    }
}

impl DedupeConfig {
    /// Problems of the `dedupe` section.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let DedupeConfig::Near(near) = self {
            if !(0.0..=1.0).contains(&near.question_min_similarity)
                || near.question_min_similarity.is_nan()
            {
                problems.push("dedupe.question_min_similarity must be between 0 and 1".to_owned());
            }
            if near.image_max_distance > 64 {
                problems.push(
                    "dedupe.image_max_distance must be at most 64 (bits of a 64-bit hash)"
                        .to_owned(),
                );
            }
            if near.max_image_uses == 0 {
                problems.push("dedupe.max_image_uses must be at least 1".to_owned());
            }
        }
        problems
    }
}
