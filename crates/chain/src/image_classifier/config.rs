//! Config of the image classifiers (`check.image`).

use serde::{Deserialize, Serialize};

use crate::remote_classifier::config::RemoteClassifierConfig;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ImageClassifierConfig {
    /// Decodes the image fully and rejects broken, tiny, huge or blank images.
    Validator(ValidatorConfig),
    /// Embedded image-safety-classifier-s (ONNX, MIT): sexual and gore scores.
    ImageSafety(ImageModelConfig),
    /// Embedded Yahoo open_nsfw (ONNX, BSD-2): a second opinion on sexual content.
    OpenNsfw(ImageModelConfig),
    /// OpenAI's `/v1/moderations` with an image input (omni-moderation).
    OpenaiModeration(RemoteClassifierConfig),
    /// Llama Guard 3 Vision on an OpenAI-compatible server (vLLM), through
    /// `/v1/chat/completions` with the image.
    LlamaGuardVision(RemoteClassifierConfig),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageModelConfig {
    /// Category probability (0-1) at or above which the image is unsafe.
    #[serde(default = "default_image_threshold")]
    pub threshold: f64,
    /// Optional lower probability from which the image is held for review.
    #[serde(default)]
    pub review_threshold: Option<f64>,
}

fn default_image_threshold() -> f64 {
    0.5
}

impl Default for ImageModelConfig {
    fn default() -> Self {
        ImageModelConfig {
            threshold: default_image_threshold(),
            review_threshold: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorConfig {
    /// Smallest accepted width and height, in pixels.
    #[serde(default = "default_min_side")]
    pub min_side: u32,
    /// Largest accepted width and height, in pixels.
    #[serde(default = "default_max_side")]
    pub max_side: u32,
    /// Largest accepted ratio of the long side to the short side.
    #[serde(default = "default_max_aspect_ratio")]
    pub max_aspect_ratio: f64,
    /// Images whose luma standard deviation (0-255 scale) is below this are
    /// blank or near-uniform.
    #[serde(default = "default_min_luma_stddev")]
    pub min_luma_stddev: f64,
}

/// Largest `max_side` allowed: decoding a 16384² image takes 1 GiB.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

impl ValidatorConfig {
    fn problems(&self, place: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.min_side == 0 || self.min_side > self.max_side {
            problems.push(format!(
                "{place}: min_side must be between 1 and max_side ({})",
                self.max_side
            ));
        }
        if !(self.max_aspect_ratio.is_finite() && self.max_aspect_ratio >= 1.0) {
            problems.push(format!(
                "{place}: max_aspect_ratio must be a number of at least 1"
            ));
        }
        if self.max_side > MAX_IMAGE_SIDE {
            problems.push(format!(
                "{place}: max_side must be at most {MAX_IMAGE_SIDE} (larger images are refused before decoding)"
            ));
        }
        if !(0.0..=128.0).contains(&self.min_luma_stddev) {
            problems.push(format!(
                "{place}: min_luma_stddev must be between 0 and 128"
            ));
        }
        problems
    }
}

fn default_min_side() -> u32 {
    64
}
fn default_max_side() -> u32 {
    8192
}
fn default_max_aspect_ratio() -> f64 {
    6.0
}
fn default_min_luma_stddev() -> f64 {
    6.0
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        ValidatorConfig {
            min_side: default_min_side(),
            max_side: default_max_side(),
            max_aspect_ratio: default_max_aspect_ratio(),
            min_luma_stddev: default_min_luma_stddev(),
        }
    }
}

siuo_core::band::band_of!(ImageModelConfig);

impl ImageClassifierConfig {
    /// Problems of one `check.image` entry at `place`.
    pub fn problems(&self, place: &str) -> Vec<String> {
        match self {
            ImageClassifierConfig::Validator(v) => v.problems(place),
            ImageClassifierConfig::ImageSafety(m) | ImageClassifierConfig::OpenNsfw(m) => {
                m.band().problems(place)
            }
            ImageClassifierConfig::OpenaiModeration(r)
            | ImageClassifierConfig::LlamaGuardVision(r) => r.problems(place),
        }
    }
}
