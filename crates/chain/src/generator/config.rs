//! The `generate` section: which generator makes candidates, and its settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::image_source::config::ImageSourceConfig;

/// How candidates are produced.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum GeneratorConfig {
    /// Offline: renders a template over a scenario bank, pairing each
    /// scenario with matching images of a library (image-first).
    Seeded(SeededConfig),
    /// Models behind an OpenAI-compatible API (OpenAI, vLLM, Ollama,
    /// llama.cpp, LiteLLM), text-first or image-first.
    Openai(Box<super::openai_config::OpenAiConfig>),
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig::Seeded(SeededConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeededConfig {
    /// Scenario bank: questions, hazards and safe answers per domain.
    #[serde(default = "default_scenarios")]
    pub scenarios: PathBuf,
    /// minijinja template with one block per candidate field.
    #[serde(default = "default_seeded_template")]
    pub template: PathBuf,
    /// Where the images come from.
    #[serde(default)]
    pub images: ImageSourceConfig,
    /// Picks question variants and images; the same seed gives the same candidates.
    #[serde(default)]
    pub seed: u64,
    /// Question variants used per (scenario, image) pair.
    #[serde(default = "one")]
    pub variants_per_scenario: u32,
    /// Matching images paired with each scenario.
    #[serde(default = "one")]
    pub images_per_scenario: u32,
}

fn default_scenarios() -> PathBuf {
    "prompts/scenarios.yaml".into()
}
fn default_seeded_template() -> PathBuf {
    "prompts/templates/seeded.j2".into()
}
fn one() -> u32 {
    1
}

impl Default for SeededConfig {
    fn default() -> Self {
        SeededConfig {
            scenarios: default_scenarios(),
            template: default_seeded_template(),
            images: ImageSourceConfig::default(),
            seed: 0,
            variants_per_scenario: 1,
            images_per_scenario: 1,
        }
    }
}

impl GeneratorConfig {
    /// Problems of the `generate` section.
    pub fn problems(&self) -> Vec<String> {
        match self {
            GeneratorConfig::Seeded(seeded) => {
                let mut problems = Vec::new();
                if seeded.variants_per_scenario == 0 {
                    problems.push("generate.variants_per_scenario must be at least 1".to_owned());
                }
                if seeded.images_per_scenario == 0 {
                    problems.push("generate.images_per_scenario must be at least 1".to_owned());
                }
                problems
            }
            GeneratorConfig::Openai(openai) => openai.problems(),
        }
    }
}
