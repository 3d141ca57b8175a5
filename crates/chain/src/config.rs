//! The one YAML file (`siuo.yaml`) that picks the backend of every stage and
//! its settings. Each section's types live beside the component they
//! configure (`generator::config`, `image_source::config`,
//! `classifier_panel`, `text_classifier::config`, `image_classifier::config`,
//! `remote_classifier::config`, `similarity::config`, `jury::config`, `eval::config`,
//! `release::config`, `review::config`);
//! this module only combines them. Parsing and [`Config::validate`] are pure:
//! no file, network or credential is touched until a backend is built.
//!
//! Relative paths are relative to the project root: the folder holding the
//! config file, or the current folder when siuo runs on its built-in defaults.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::classifier_panel::{CheckConfig, CombineRule};
pub use crate::generator::config::{GeneratorConfig, SeededConfig};
pub use crate::image_classifier::config::{
    ImageClassifierConfig, ImageModelConfig, MAX_IMAGE_SIDE, ValidatorConfig,
};
pub use crate::image_source::config::{ImageSourceConfig, LibraryConfig};
pub use crate::jury::config::{JurorConfig, JuryConfig, VerifyConfig};
pub use crate::release_writer::config::ExportConfig;
pub use crate::remote_classifier::config::RemoteClassifierConfig;
pub use crate::similarity::config::{
    DEFAULT_IMAGE_DISTANCE, DedupeConfig, ExactDedupeConfig, NearDedupeConfig,
};
pub use crate::text_classifier::config::{
    LexiconConfig, MAX_NEIGHBOURS, MiniLmConfig, TextClassifierConfig,
};
pub use siuo_core::band::Band;

use siuo_core::error::{Error, Result};
use siuo_core::input_file;

/// File name looked up in the current folder when `--config` is not given.
pub const DEFAULT_FILE_NAME: &str = "siuo.yaml";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The SIUO taxonomy of domains and subcategories.
    #[serde(default = "default_taxonomy")]
    pub taxonomy: PathBuf,
    /// Working outputs of runs (content-addressed images, per-run stage records).
    #[serde(default = "default_raw")]
    pub raw: PathBuf,
    /// Published releases, one immutable folder per version.
    #[serde(default = "default_curated")]
    pub curated: PathBuf,
    /// Embedded model files, fetched by `siuo models fetch` and verified by sha256.
    #[serde(default = "default_models")]
    pub models: PathBuf,
    #[serde(default)]
    pub generate: GeneratorConfig,
    #[serde(default)]
    pub check: CheckConfig,
    #[serde(default)]
    pub dedupe: DedupeConfig,
    #[serde(default)]
    pub verify: VerifyConfig,
    /// The panel of models whose failures make a case hard.
    #[serde(default)]
    pub difficulty: crate::panel::config::DifficultyConfig,
    #[serde(default)]
    pub export: ExportConfig,
    /// The review desk (`siuo review`) and what export requires of it.
    #[serde(default)]
    pub review: siuo_core::review::config::ReviewConfig,
    /// `siuo eval`: the models a release is scored on, and their judges.
    #[serde(default)]
    pub eval: crate::panel::config::EvalConfig,
}

fn default_taxonomy() -> PathBuf {
    "prompts/taxonomy.yaml".into()
}
fn default_raw() -> PathBuf {
    "raw".into()
}
fn default_curated() -> PathBuf {
    "curated".into()
}
fn default_models() -> PathBuf {
    ".models".into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            taxonomy: default_taxonomy(),
            raw: default_raw(),
            curated: default_curated(),
            models: default_models(),
            generate: GeneratorConfig::default(),
            check: CheckConfig::default(),
            dedupe: DedupeConfig::default(),
            verify: VerifyConfig::default(),
            difficulty: Default::default(),
            export: ExportConfig::default(),
            review: Default::default(),
            eval: crate::panel::config::EvalConfig::default(),
        }
    }
}

/// A parsed config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file it was read from, or `None` for the built-in defaults.
    pub file: Option<PathBuf>,
    /// Folder that relative paths are resolved against; empty for the current folder.
    pub root: PathBuf,
}

impl LoadedConfig {
    /// Loads `explicit`, else `./siuo.yaml` if present, else the built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let file = match explicit {
            Some(path) => Some(path.to_owned()),
            None => Some(PathBuf::from(DEFAULT_FILE_NAME)).filter(|p| p.is_file()),
        };
        let Some(file) = file else {
            return Ok(LoadedConfig {
                config: Config::default(),
                file: None,
                root: PathBuf::new(),
            });
        };
        let text = input_file::read_text(&file)?;
        // An empty file (or one that is all comments) means "all defaults".
        let config = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            Config::default()
        } else {
            input_file::parse_yaml(&file, &text)?
        };
        // An empty root (config in the current folder) keeps paths in
        // messages short: `prompts/x.yaml`, not `./prompts/x.yaml`.
        let root = file.parent().map(Path::to_owned).unwrap_or_default();
        let loaded = LoadedConfig {
            config,
            file: Some(file),
            root,
        };
        loaded.validate()?;
        Ok(loaded)
    }

    fn validate(&self) -> Result<()> {
        let problems = self.config.validate();
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::Config {
            path: self
                .file
                .clone()
                .unwrap_or_else(|| "<built-in defaults>".into()),
            problems,
        })
    }

    pub fn path(&self, relative: &Path) -> PathBuf {
        self.root.join(relative)
    }

    /// How a release names the file at `path` (as given on this machine,
    /// relative to the current folder): relative to the project folder, or
    /// by its file name alone when it lies outside, so that no release names
    /// a directory of the machine that made it.
    pub fn release_name(&self, path: &Path) -> String {
        let absolute = |p: &Path| {
            let full = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
            full.canonicalize().unwrap_or(full)
        };
        let root = absolute(if self.root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.root
        });
        let file_name = || {
            path.file_name()
                .map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned())
        };
        match absolute(path).strip_prefix(&root) {
            Ok(inside) if !inside.as_os_str().is_empty() => inside
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/"),
            _ => file_name(),
        }
    }

    /// Name used in messages for the config.
    pub fn display_name(&self) -> String {
        self.file.as_ref().map_or_else(
            || "<built-in defaults>".to_owned(),
            |f| f.display().to_string(),
        )
    }
}

impl Config {
    /// Every problem at once, so a user fixes the file in one pass; each
    /// part checks its own section.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = self.generate.problems();
        problems.extend(self.check.problems());
        problems.extend(self.dedupe.problems());
        problems.extend(
            self.verify
                .problems(&crate::jury::check::JudgeCheck::ALL.map(|c| c.name())),
        );
        problems.extend(self.difficulty.problems(&self.eval));
        if let GeneratorConfig::Openai(openai) = &self.generate
            && openai.rounds > 1
            && !matches!(
                self.difficulty,
                crate::panel::config::DifficultyConfig::Panel(_)
            )
        {
            problems.push(format!(
                "generate.rounds is {} but there is no difficulty panel to learn from: add difficulty: {{type: panel, targets: [...]}}",
                openai.rounds
            ));
        }
        problems.extend(self.export.problems());
        problems.extend(self.review.problems());
        problems.extend(self.eval.problems());
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_config_equals_the_built_in_defaults() -> Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../siuo.yaml");
        let loaded = LoadedConfig::load(Some(&path))?;
        assert_eq!(loaded.config, Config::default());
        Ok(())
    }

    #[test]
    fn misspelled_backend_type_is_a_yaml_error_naming_the_file() {
        let err =
            input_file::parse_yaml::<Config>(Path::new("siuo.yaml"), "generate:\n  type: seded\n");
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with("siuo.yaml: invalid YAML"), "{message}");
        assert!(message.contains("seded"), "{message}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = input_file::parse_yaml::<Config>(
            Path::new("siuo.yaml"),
            "dedupe:\n  type: exact\n  radius: 3\n",
        );
        assert!(err.is_err());
    }

    #[test]
    fn all_problems_are_reported_together() {
        let mut config = Config::default();
        config.check.text.clear();
        config.export.first_version = "one".into();
        let problems = config.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
