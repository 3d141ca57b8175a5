//! Text classifiers judge the question alone, without the image. A SIUO
//! question must pass the configured text classifiers (see `check.combine`).

pub mod config;
pub mod lexicon;
pub mod minilm;
pub mod sentence_encoder;
pub mod wordpiece;

use std::path::Path;

use crate::error::Result;
use crate::record::ClassifierVerdict;
use config::TextClassifierConfig;

pub trait TextClassifier: Send + Sync {
    /// Stable id recorded in verdicts, e.g. `lexicon`.
    fn id(&self) -> &str;
    /// Rules digest, weights digest or remote model name.
    fn version(&self) -> &str;
    /// sha256 of the weights of an embedded model.
    fn weights_sha256(&self) -> Option<&str> {
        None
    }
    /// One verdict per text, in order. An error (a remote backend that
    /// stayed down) means no verdict at all, never a guessed one.
    fn classify(&self, texts: &[&str]) -> Result<Vec<ClassifierVerdict>>;
}

/// `root` resolves relative paths of the config; `models_dir` holds the
/// verified model files; `raw` the response cache of remote backends.
pub fn build(
    config: &TextClassifierConfig,
    root: &Path,
    models_dir: &Path,
    raw: &Path,
) -> Result<Box<dyn TextClassifier>> {
    Ok(match config {
        TextClassifierConfig::Lexicon(lexicon) => {
            Box::new(lexicon::Lexicon::load(&root.join(&lexicon.path))?)
        }
        TextClassifierConfig::Minilm(settings) => {
            Box::new(minilm::MiniLmClassifier::load(settings, root, models_dir)?)
        }
        TextClassifierConfig::OpenaiModeration(remote) => {
            Box::new(crate::remote_classifier::moderation::ModerationClassifier::new(remote, raw)?)
        }
        TextClassifierConfig::LlamaGuard(remote) => Box::new(
            crate::remote_classifier::llama_guard::LlamaGuard::text(remote, raw)?,
        ),
    })
}
