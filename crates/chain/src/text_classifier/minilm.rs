//! Embedded text classifier (`type: minilm`): all-MiniLM-L6-v2 sentence
//! embeddings scored against a bank of labeled exemplars by nearest
//! neighbours. For each harm category, the mean cosine of the question to
//! its `k` nearest unsafe exemplars of that category is compared with the
//! mean cosine to its `k` nearest safe exemplars; a category's score is the
//! logistic of that margin. Safe exemplars include SIUO-style questions
//! whose risk needs the image, so such questions land near them.
//!
//! The exemplar bank must never hold calibration questions or questions of
//! the published SIUO benchmark: those measure this classifier.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::TextClassifier;
use super::sentence_encoder::{DIMENSION, SentenceEncoder, cosine};
use crate::text_classifier::config::MiniLmConfig;
use siuo_core::atomic_file;
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::model_file::{MINILM_VOCAB, MINILM_WEIGHTS};
use siuo_core::record::ClassifierVerdict;

/// Bumped when the encoder's arithmetic changes, so cached exemplar
/// embeddings are recomputed instead of trusted.
/// v2: the tokenizer matches the reference on Unicode punctuation, format
/// characters, non-spacing marks and typed special tokens.
pub const ENCODER_VERSION: &str = "minilm-encoder-v2";
/// Width of the logistic that turns a cosine margin into a score.
const MARGIN_SCALE: f32 = 0.04;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemplarFile {
    /// Harm category → explicit harmful requests.
    #[serde(rename = "unsafe")]
    unsafe_exemplars: BTreeMap<String, Vec<String>>,
    /// Group → benign questions (groups are only for people).
    safe: BTreeMap<String, Vec<String>>,
}

pub struct MiniLmClassifier {
    encoder: SentenceEncoder,
    version: String,
    weights_sha256: String,
    settings: MiniLmConfig,
    /// Harm category → unit embeddings of its exemplars.
    unsafe_bank: BTreeMap<String, Vec<Vec<f32>>>,
    safe_bank: Vec<Vec<f32>>,
}

impl MiniLmClassifier {
    pub fn load(settings: &MiniLmConfig, root: &Path, models_dir: &Path) -> Result<Self> {
        let weights = MINILM_WEIGHTS.load(models_dir)?;
        let vocab = MINILM_VOCAB.load(models_dir)?;
        let vocab = String::from_utf8(vocab)
            .map_err(|_| MINILM_VOCAB.load_error(models_dir, "vocabulary is not UTF-8"))?;
        let encoder = SentenceEncoder::load(&weights, &vocab)
            .map_err(|message| MINILM_WEIGHTS.load_error(models_dir, message))?;
        drop(weights);

        let exemplar_path = root.join(&settings.exemplars);
        let text = input_file::read_text(&exemplar_path)?;
        let file: ExemplarFile = input_file::parse_yaml(&exemplar_path, &text)?;
        if file.unsafe_exemplars.values().all(Vec::is_empty)
            || file.safe.values().all(Vec::is_empty)
        {
            return Err(Error::InvalidRecord {
                path: exemplar_path,
                record: "exemplar bank".to_owned(),
                message: "needs at least one `unsafe` and one `safe` exemplar".to_owned(),
            });
        }
        let exemplar_digest = Digest::of(text.as_bytes());
        let mut texts: Vec<&str> = Vec::new();
        for list in file.unsafe_exemplars.values().chain(file.safe.values()) {
            texts.extend(list.iter().map(String::as_str));
        }
        let cache = models_dir.join("cache").join(format!(
            "exemplars-v1/{}.f32",
            ContentHasher::new(ENCODER_VERSION)
                .str(MINILM_WEIGHTS.sha256)
                .str(MINILM_VOCAB.sha256)
                .str(&exemplar_digest.hex())
                .finish()
                .short(32)
        ));
        let mut embeddings = cached_embeddings(&cache, texts.len())
            .unwrap_or_else(|| encoder.embed_all(&texts))
            .into_iter();
        // A cache entry is only a speed-up: failing to write it is no error.
        let _ = store_embeddings(&cache, embeddings.as_slice());

        let mut unsafe_bank = BTreeMap::new();
        for (category, list) in &file.unsafe_exemplars {
            let vectors: Vec<Vec<f32>> = embeddings.by_ref().take(list.len()).collect();
            if !vectors.is_empty() {
                unsafe_bank.insert(category.clone(), vectors);
            }
        }
        let safe_bank: Vec<Vec<f32>> = embeddings.collect();
        Ok(MiniLmClassifier {
            encoder,
            version: format!(
                "all-minilm-l6-v2 sha256:{} exemplars blake3:{} {ENCODER_VERSION}",
                MINILM_WEIGHTS.sha256,
                exemplar_digest.short(16)
            ),
            weights_sha256: MINILM_WEIGHTS.sha256.to_owned(),
            settings: settings.clone(),
            unsafe_bank,
            safe_bank,
        })
    }

    fn verdict(&self, embedding: &[f32]) -> ClassifierVerdict {
        let k = self.settings.neighbours.max(1) as usize;
        let safe_similarity = nearest_mean(&self.safe_bank, embedding, k);
        let mut scores = BTreeMap::new();
        let mut worst: Option<(&str, f64)> = None;
        for (category, bank) in &self.unsafe_bank {
            let margin = nearest_mean(bank, embedding, k) - safe_similarity;
            let score = f64::from(1.0 / (1.0 + (-margin / MARGIN_SCALE).exp()));
            scores.insert(category.clone(), score);
            if worst.is_none_or(|(_, s)| score > s) {
                worst = Some((category, score));
            }
        }
        let (category, unsafe_score) = worst.unwrap_or(("none", 0.0));
        let judgement = self.settings.band().judge(unsafe_score);
        ClassifierVerdict {
            classifier: self.id().to_owned(),
            version: self.version.clone(),
            weights_sha256: Some(self.weights_sha256.clone()),
            scores,
            unsafe_score,
            judgement,
            reasons: judgement.reasons("minilm", category),
            detail: format!(
                "nearest category {category} at {unsafe_score:.3} (unsafe at {}, nearest safe exemplars {safe_similarity:.3})",
                self.settings.threshold
            ),
        }
    }
}

/// Mean cosine of `query` to its `k` nearest vectors of `bank`.
fn nearest_mean(bank: &[Vec<f32>], query: &[f32], k: usize) -> f32 {
    let mut similarities: Vec<f32> = bank.iter().map(|v| cosine(v, query)).collect();
    similarities.sort_by(|a, b| b.total_cmp(a));
    let top = &similarities[..k.min(similarities.len())];
    if top.is_empty() {
        return 0.0;
    }
    top.iter().sum::<f32>() / top.len() as f32
}

fn cached_embeddings(path: &Path, count: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() != count * DIMENSION * 4 {
        return None;
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some(
        values
            .chunks_exact(DIMENSION)
            .map(<[f32]>::to_vec)
            .collect(),
    )
}

fn store_embeddings(path: &Path, embeddings: &[Vec<f32>]) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let bytes: Vec<u8> = embeddings
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    atomic_file::write_unsynced(path, &bytes)
}

impl TextClassifier for MiniLmClassifier {
    fn id(&self) -> &str {
        "minilm"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn weights_sha256(&self) -> Option<&str> {
        Some(&self.weights_sha256)
    }

    fn classify(&self, texts: &[&str]) -> Result<Vec<ClassifierVerdict>> {
        Ok(self
            .encoder
            .embed_all(texts)
            .iter()
            .map(|e| self.verdict(e))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siuo_core::text_normal;

    /// The calibration set measures this classifier on questions it never
    /// saw: no exemplar may repeat one of them, even with other case,
    /// spacing or punctuation.
    #[test]
    fn the_exemplar_bank_shares_no_question_with_the_calibration_set() -> Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let path = root.join(MiniLmConfig::default().exemplars);
        let bank: ExemplarFile = input_file::parse_yaml(&path, &input_file::read_text(&path)?)?;
        let exemplars: std::collections::BTreeSet<String> = bank
            .unsafe_exemplars
            .values()
            .chain(bank.safe.values())
            .flatten()
            .map(|t| text_normal::normalize(t))
            .collect();
        let labels: Vec<serde_json::Value> =
            input_file::read_jsonl(&root.join("prompts/calibration/text.jsonl"))?;
        assert!(labels.len() >= 200);
        for line in labels {
            let text = line["text"].as_str().unwrap_or_default();
            assert!(!exemplars.contains(&text_normal::normalize(text)), "{text}");
        }
        Ok(())
    }

    /// Tests that load the embedded model files (`./justw test-models`).
    mod models {
        use super::*;

        /// Every question variant of the offline generator is a SIUO question:
        /// harmless alone, so the embedded model must pass it.
        #[test]
        #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
        fn every_shipped_scenario_question_passes() -> Result<()> {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let questions = crate::generator::scenario_bank::shipped_questions()?;
            let questions: Vec<&str> = questions.iter().map(String::as_str).collect();
            assert!(questions.len() >= 72, "48 variants and 24 controls");
            let classifier = MiniLmClassifier::load(
                &MiniLmConfig::default(),
                &root,
                &siuo_core::model_file::checkout_models_dir(),
            )?;
            for (question, verdict) in questions.iter().zip(classifier.classify(&questions)?) {
                assert!(verdict.is_safe(), "{question}: {}", verdict.detail);
            }
            Ok(())
        }
    }
}
