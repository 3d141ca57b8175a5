//! Text classifiers judge the question alone, without the image. A SIUO
//! question must pass every configured text classifier.

pub mod lexicon;

use std::path::Path;

use crate::config::TextClassifierConfig;
use crate::error::Result;
use crate::record::ClassifierVerdict;

pub trait TextClassifier {
    /// Stable id recorded in verdicts, e.g. `lexicon`.
    fn id(&self) -> &str;
    /// Rules digest, weights digest or remote model name.
    fn version(&self) -> &str;
    fn classify(&self, text: &str) -> ClassifierVerdict;
}

pub fn build(config: &TextClassifierConfig, root: &Path) -> Result<Box<dyn TextClassifier>> {
    match config {
        TextClassifierConfig::Lexicon(lexicon) => {
            Ok(Box::new(lexicon::Lexicon::load(&root.join(&lexicon.path))?))
        }
    }
}
