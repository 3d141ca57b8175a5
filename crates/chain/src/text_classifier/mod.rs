//! Text classifiers judge the question alone, without the image. A SIUO
//! question must pass the configured text classifiers (see `check.combine`).

pub mod config;
pub mod lexicon;
pub mod minilm;
pub mod sentence_encoder;
pub mod wordpiece;

use siuo_core::error::Result;
use siuo_core::record::ClassifierVerdict;

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
