//! The one YAML file (`siuo.yaml`) that picks the backend of every stage and
//! its settings. Parsing and [`Config::validate`] are pure: no file, network
//! or credential is touched until a backend is built.
//!
//! Relative paths are relative to the project root: the folder holding the
//! config file, or the current folder when siuo runs on its built-in defaults.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content_hash::{ContentHasher, Digest};
use crate::error::{Error, Result};
use crate::input_file;
use crate::record::Judgement;

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
    pub export: ExportConfig,
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
            export: ExportConfig::default(),
        }
    }
}

/// How candidates are produced.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum GeneratorConfig {
    /// Offline: renders a template over a scenario bank, pairing each
    /// scenario with matching images of a library (image-first).
    Seeded(SeededConfig),
    /// Models behind an OpenAI-compatible API (OpenAI, vLLM, Ollama,
    /// llama.cpp, LiteLLM), text-first or image-first.
    Openai(Box<crate::openai::config::OpenAiConfig>),
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

/// Where images come from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ImageSourceConfig {
    /// A local folder of images with a `library.yaml` sidecar (caption, tags, source, license).
    Library(LibraryConfig),
}

impl Default for ImageSourceConfig {
    fn default() -> Self {
        ImageSourceConfig::Library(LibraryConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    /// Folder holding the images and `library.yaml`.
    #[serde(default = "default_library")]
    pub path: PathBuf,
}

fn default_library() -> PathBuf {
    "prompts/library/starter".into()
}

impl Default for LibraryConfig {
    fn default() -> Self {
        LibraryConfig {
            path: default_library(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Classifiers of the question alone.
    #[serde(default = "default_text_classifiers")]
    pub text: Vec<TextClassifierConfig>,
    /// Classifiers of the image alone.
    #[serde(default = "default_image_classifiers")]
    pub image: Vec<ImageClassifierConfig>,
    /// How several classifiers of one modality combine.
    #[serde(default)]
    pub combine: CombineRule,
}

fn default_text_classifiers() -> Vec<TextClassifierConfig> {
    vec![
        TextClassifierConfig::Lexicon(LexiconConfig::default()),
        TextClassifierConfig::Minilm(MiniLmConfig::default()),
    ]
}
fn default_image_classifiers() -> Vec<ImageClassifierConfig> {
    vec![
        ImageClassifierConfig::Validator(ValidatorConfig::default()),
        ImageClassifierConfig::ImageSafety(ImageModelConfig::default()),
    ]
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            text: default_text_classifiers(),
            image: default_image_classifiers(),
            combine: CombineRule::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CombineRule {
    /// A modality fails if any of its classifiers says unsafe; otherwise it
    /// is held for review if any says review.
    #[default]
    AnyUnsafe,
    /// A modality fails if more than half of its classifiers say unsafe; it
    /// is held for review if any says unsafe or review.
    Majority,
    /// A modality fails only if every classifier says unsafe; it is held for
    /// review if any says unsafe or review.
    AllUnsafe,
}

/// A score at or above `threshold` is unsafe; one at or above
/// `review_threshold` (when set, and lower) is held for human review.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub threshold: f64,
    pub review_threshold: Option<f64>,
}

impl Band {
    pub fn judge(&self, unsafe_score: f64) -> Judgement {
        if unsafe_score >= self.threshold {
            Judgement::Unsafe
        } else if self.review_threshold.is_some_and(|r| unsafe_score >= r) {
            Judgement::Review
        } else {
            Judgement::Safe
        }
    }

    fn problems(&self, place: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.threshold) || self.threshold.is_nan() {
            problems.push(format!("{place}: threshold must be between 0 and 1"));
        }
        if let Some(review) = self.review_threshold
            && !(0.0..self.threshold).contains(&review)
        {
            problems.push(format!(
                "{place}: review_threshold must be at least 0 and below threshold ({})",
                self.threshold
            ));
        }
        problems
    }
}

/// `band()` of a classifier config with `threshold` and `review_threshold`
/// fields (serde cannot flatten them into a `Band` under `deny_unknown_fields`).
macro_rules! band_of {
    ($($config:ty),+) => {$(
        impl $config {
            pub fn band(&self) -> Band {
                Band {
                    threshold: self.threshold,
                    review_threshold: self.review_threshold,
                }
            }
        }
    )+};
}
band_of!(MiniLmConfig, RemoteClassifierConfig, ImageModelConfig);

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

/// A classifier behind an HTTP API (OpenAI moderation, Llama Guard on vLLM).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteClassifierConfig {
    /// Base URL up to and including `/v1`.
    pub base_url: String,
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
    pub limits: crate::openai::config::RequestLimits,
}

fn default_remote_threshold() -> f64 {
    0.5
}

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

impl RemoteClassifierConfig {
    fn problems(&self, place: &str) -> Vec<String> {
        let mut problems = self.band().problems(place);
        problems.extend(crate::openai::config::base_url_problem(
            place,
            &self.base_url,
        ));
        if self.model.trim().is_empty() {
            problems.push(format!("{place}: model must not be empty"));
        }
        problems.extend(crate::openai::config::api_key_env_problem(
            place,
            self.api_key_env.as_deref(),
        ));
        problems.extend(self.limits.problems(place));
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Name of the dataset, written into every manifest.
    #[serde(default = "default_dataset_name")]
    pub dataset_name: String,
    /// License of the released cases (an SPDX id).
    #[serde(default = "default_license")]
    pub license: String,
    /// Version of the first release; later ones follow semantic versioning.
    #[serde(default = "default_first_version")]
    pub first_version: String,
    /// A parquet shard is closed once its images exceed this many bytes
    /// (Hugging Face's viewer and loaders prefer shards of a few hundred MB).
    #[serde(default = "default_shard_image_bytes")]
    pub shard_image_bytes: u64,
}

fn default_shard_image_bytes() -> u64 {
    crate::release::hf_parquet::SHARD_IMAGE_BYTES
}

fn default_dataset_name() -> String {
    "siuo-generated".into()
}
fn default_license() -> String {
    "CC-BY-4.0".into()
}
fn default_first_version() -> String {
    "1.0.0".into()
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            dataset_name: default_dataset_name(),
            license: default_license(),
            first_version: default_first_version(),
            shard_image_bytes: default_shard_image_bytes(),
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

    /// Name used in messages for the config.
    pub fn display_name(&self) -> String {
        self.file.as_ref().map_or_else(
            || "<built-in defaults>".to_owned(),
            |f| f.display().to_string(),
        )
    }
}

impl Config {
    /// Every problem at once, so a user fixes the file in one pass.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.generate {
            GeneratorConfig::Seeded(seeded) => {
                if seeded.variants_per_scenario == 0 {
                    problems.push("generate.variants_per_scenario must be at least 1".to_owned());
                }
                if seeded.images_per_scenario == 0 {
                    problems.push("generate.images_per_scenario must be at least 1".to_owned());
                }
            }
            GeneratorConfig::Openai(openai) => problems.extend(openai.problems()),
        }
        if self.check.text.is_empty() {
            problems.push("check.text needs at least one classifier".to_owned());
        }
        if self.check.image.is_empty() {
            problems.push("check.image needs at least one classifier".to_owned());
        }
        for (index, classifier) in self.check.text.iter().enumerate() {
            let place = format!("check.text[{index}]");
            match classifier {
                TextClassifierConfig::Lexicon(_) => {}
                TextClassifierConfig::Minilm(m) => {
                    problems.extend(m.band().problems(&place));
                    if !(1..=MAX_NEIGHBOURS).contains(&m.neighbours) {
                        problems.push(format!(
                            "{place}: neighbours must be between 1 and {MAX_NEIGHBOURS}"
                        ));
                    }
                }
                TextClassifierConfig::OpenaiModeration(r) | TextClassifierConfig::LlamaGuard(r) => {
                    problems.extend(r.problems(&place));
                }
            }
        }
        for (index, classifier) in self.check.image.iter().enumerate() {
            let place = format!("check.image[{index}]");
            match classifier {
                ImageClassifierConfig::Validator(v) => problems.extend(v.problems(&place)),
                ImageClassifierConfig::ImageSafety(m) | ImageClassifierConfig::OpenNsfw(m) => {
                    problems.extend(m.band().problems(&place));
                }
                ImageClassifierConfig::OpenaiModeration(r)
                | ImageClassifierConfig::LlamaGuardVision(r) => problems.extend(r.problems(&place)),
            }
        }
        if let DedupeConfig::Near(near) = &self.dedupe {
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
        if self.export.dataset_name.trim().is_empty() {
            problems.push("export.dataset_name must not be empty".to_owned());
        }
        if self.export.license.trim().is_empty()
            || self
                .export
                .license
                .chars()
                .any(|c| c.is_whitespace() && c != ' ')
        {
            problems.push("export.license must be an SPDX license id such as CC-BY-4.0".to_owned());
        }
        if self.export.shard_image_bytes == 0 {
            problems.push("export.shard_image_bytes must be at least 1".to_owned());
        }
        if semver::Version::parse(&self.export.first_version).is_err() {
            problems.push(format!(
                "export.first_version `{}` is not a semantic version like 1.0.0",
                self.export.first_version
            ));
        }
        problems
    }

    /// Digest of a config slice, for stage keys. JSON of typed structs has a
    /// fixed field order, so equal configs give equal digests.
    pub fn digest_of<T: Serialize>(slice: &T) -> Digest {
        let json = serde_json::to_string(slice).unwrap_or_default();
        ContentHasher::new("siuo.config").str(&json).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_config_equals_the_built_in_defaults() -> Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../siuo.yaml");
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
