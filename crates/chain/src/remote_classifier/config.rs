//! Config of a classifier behind an HTTP API, as a text or an image classifier.

use serde::{Deserialize, Serialize};

/// A classifier behind an HTTP API (OpenAI moderation, Llama Guard on vLLM).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteClassifierConfig {
    /// Base URL up to and including `/v1`.
    pub base_url: siuo_core::openai::config::BaseUrls,
    /// Name of the environment variable holding the API key, if the server
    /// needs one. The key itself never goes in a file.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Model name, e.g. `omni-moderation-latest` or `meta-llama/Llama-Guard-3-8B`.
    pub model: String,
    /// Score (0-1) at or above which the input is unsafe. Llama Guard's
    /// score is its probability of answering `unsafe` when the server returns
    /// log-probabilities, else 0 or 1.
    #[serde(default = "default_remote_threshold")]
    pub threshold: f64,
    /// Optional lower score from which the input is held for human review.
    #[serde(default)]
    pub review_threshold: Option<f64>,
    /// Concurrency, rate limits, timeout and retries, as for generation.
    #[serde(default)]
    pub limits: siuo_core::openai::config::RequestLimits,
}

fn default_remote_threshold() -> f64 {
    0.5
}

impl RemoteClassifierConfig {
    pub fn problems(&self, place: &str) -> Vec<String> {
        let mut problems = self.band().problems(place);
        problems.extend(siuo_core::openai::config::base_url_problem(
            place,
            &self.base_url,
        ));
        if self.model.trim().is_empty() {
            problems.push(format!("{place}: model must not be empty"));
        }
        problems.extend(siuo_core::openai::config::api_key_env_problem(
            place,
            self.api_key_env.as_deref(),
        ));
        problems.extend(self.limits.problems(place));
        problems
    }
}

siuo_core::band::band_of!(RemoteClassifierConfig);
