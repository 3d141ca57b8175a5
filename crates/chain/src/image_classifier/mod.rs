//! Image classifiers judge the image alone, without the question. A SIUO
//! image must pass the configured image classifiers (see `check.combine`).

pub mod config;
pub mod onnx_model;
pub mod validator;

use siuo_core::error::Result;
use siuo_core::record::ClassifierVerdict;

pub trait ImageClassifier: Send + Sync {
    /// Stable id recorded in verdicts, e.g. `validator`.
    fn id(&self) -> &str;
    /// Settings digest, weights digest or remote model name.
    fn version(&self) -> &str;
    /// sha256 of the weights of an embedded model.
    fn weights_sha256(&self) -> Option<&str> {
        None
    }
    /// One verdict per image, in order. A broken image is an unsafe verdict
    /// with a reason; an error means no verdict at all (a remote backend
    /// that stayed down), never a guessed one.
    fn classify(&self, images: &[&[u8]]) -> Result<Vec<ClassifierVerdict>>;
}
