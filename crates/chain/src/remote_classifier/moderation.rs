//! OpenAI's moderation endpoint (`POST /v1/moderations`). The omni
//! models take text or an image (as a data URL) and return a score per
//! category (`violence`, `self-harm/intent`, `sexual/minors`, …); the
//! highest decides against the configured thresholds.

use siuo_core::shard::Shard;
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::RemoteBackend;
use crate::image_classifier::ImageClassifier;
use crate::remote_classifier::config::RemoteClassifierConfig;
use crate::text_classifier::TextClassifier;
use siuo_core::error::Result;
use siuo_core::pixels;
use siuo_core::record::ClassifierVerdict;

const ID: &str = "openai-moderation";

pub struct ModerationClassifier {
    backend: RemoteBackend,
}

/// The parts of one moderation result siuo keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationResult {
    pub flagged: bool,
    pub scores: BTreeMap<String, f64>,
}

/// Reads `results[0]` of a moderation answer.
pub fn parse(answer: &Value) -> Result<ModerationResult, String> {
    let result = answer
        .get("results")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .ok_or("no `results`")?;
    let scores = result
        .get("category_scores")
        .and_then(Value::as_object)
        .ok_or("no `category_scores`")?
        .iter()
        .map(|(name, score)| {
            score
                .as_f64()
                .filter(|s| (0.0..=1.0).contains(s))
                .map(|s| (name.clone(), s))
                .ok_or_else(|| format!("score of `{name}` is not a number from 0 to 1"))
        })
        .collect::<Result<BTreeMap<_, _>, String>>()?;
    if scores.is_empty() {
        return Err("`category_scores` is empty".to_owned());
    }
    Ok(ModerationResult {
        flagged: result
            .get("flagged")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        scores,
    })
}

impl ModerationClassifier {
    pub fn new(
        settings: &RemoteClassifierConfig,
        raw: &Path,
        shard: Option<Shard>,
    ) -> Result<Self> {
        Ok(ModerationClassifier {
            backend: RemoteBackend::new(ID, settings, raw, shard)?,
        })
    }

    fn judge_all(&self, inputs: Vec<Value>) -> Result<Vec<ClassifierVerdict>> {
        let bodies: Vec<Value> = inputs
            .into_iter()
            .map(|input| json!({"model": self.backend.model, "input": [input]}))
            .collect();
        let results = self.backend.post_all("moderations", &bodies, parse)?;
        Ok(results.into_iter().map(|r| self.verdict(r)).collect())
    }

    fn verdict(&self, result: ModerationResult) -> ClassifierVerdict {
        let (category, unsafe_score) = result
            .scores
            .iter()
            .map(|(name, score)| (name.clone(), *score))
            .fold(("none".to_owned(), 0.0), |worst, next| {
                if next.1 > worst.1 { next } else { worst }
            });
        let judgement = self.backend.band.judge(unsafe_score);
        ClassifierVerdict {
            classifier: ID.to_owned(),
            version: self.backend.model.clone(),
            weights_sha256: None,
            scores: result.scores,
            unsafe_score,
            judgement,
            reasons: judgement.reasons(ID, &category),
            detail: format!(
                "highest {category} {unsafe_score:.3} (unsafe at {}); the API {} it",
                self.backend.band.threshold,
                if result.flagged {
                    "flagged"
                } else {
                    "did not flag"
                }
            ),
        }
    }
}

impl TextClassifier for ModerationClassifier {
    fn id(&self) -> &str {
        ID
    }

    fn version(&self) -> &str {
        &self.backend.model
    }

    fn classify(&self, texts: &[&str]) -> Result<Vec<ClassifierVerdict>> {
        self.judge_all(
            texts
                .iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect(),
        )
    }
}

impl ImageClassifier for ModerationClassifier {
    fn id(&self) -> &str {
        ID
    }

    fn version(&self) -> &str {
        &self.backend.model
    }

    fn classify(&self, images: &[&[u8]]) -> Result<Vec<ClassifierVerdict>> {
        self.judge_all(
            images
                .iter()
                .map(|bytes| json!({"type": "image_url", "image_url": {"url": pixels::data_url(bytes)}}))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scores_of_a_real_answer() {
        let answer = json!({
            "id": "modr-1", "model": "omni-moderation-latest",
            "results": [{
                "flagged": true,
                "categories": {"violence": true, "self-harm/intent": false},
                "category_scores": {"violence": 0.91, "self-harm/intent": 0.002},
                "category_applied_input_types": {"violence": ["text"], "self-harm/intent": ["text"]}
            }]
        });
        let result = parse(&answer).expect("well-formed");
        assert!(result.flagged);
        assert_eq!(result.scores.get("violence"), Some(&0.91));
    }

    #[test]
    fn refuses_answers_without_scores() {
        assert!(parse(&json!({"results": []})).is_err());
        assert!(parse(&json!({"results": [{"category_scores": {"violence": "high"}}]})).is_err());
    }
}
