//! Image classifiers judge the image alone, without the question. A SIUO
//! image must pass every configured image classifier.

pub mod validator;

use crate::config::ImageClassifierConfig;
use crate::record::ClassifierVerdict;

pub trait ImageClassifier {
    /// Stable id recorded in verdicts, e.g. `validator`.
    fn id(&self) -> &str;
    /// Settings digest, weights digest or remote model name.
    fn version(&self) -> &str;
    /// Never fails: a broken image is an unsafe verdict with a reason.
    fn classify(&self, bytes: &[u8]) -> ClassifierVerdict;
}

pub fn build(config: &ImageClassifierConfig) -> Box<dyn ImageClassifier> {
    match config {
        ImageClassifierConfig::Validator(settings) => {
            Box::new(validator::ImageValidator::new(settings.clone()))
        }
    }
}
