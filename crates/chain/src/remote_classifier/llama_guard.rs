//! Llama Guard 3 served by an OpenAI-compatible server (vLLM).
//!
//! Text (`llama-guard`): the model's own prompt, with its 14 hazard
//! categories, goes to `/v1/completions` verbatim, so no chat template on
//! the server can change it. Images (`llama-guard-vision`, Llama Guard 3
//! Vision): the image goes to `/v1/chat/completions` and the server's chat
//! template for the model builds the same prompt around it.
//!
//! The answer is `safe`, or `unsafe` and a line of codes (`S1,S10`); the
//! codes map to siuo's harm categories. When the server returns
//! log-probabilities, the score is the probability of `unsafe` as the first
//! token; otherwise 1 for unsafe and 0 for safe.

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
use siuo_core::record::{ClassifierVerdict, Judgement};

/// Llama Guard 3's hazard taxonomy (MLCommons), code → siuo category.
pub const HAZARDS: [(&str, &str, &str); 14] = [
    ("S1", "Violent Crimes", "violence"),
    ("S2", "Non-Violent Crimes", "crime"),
    ("S3", "Sex-Related Crimes", "sexual"),
    ("S4", "Child Sexual Exploitation", "child-exploitation"),
    ("S5", "Defamation", "defamation"),
    ("S6", "Specialized Advice", "specialized-advice"),
    ("S7", "Privacy", "privacy"),
    ("S8", "Intellectual Property", "intellectual-property"),
    ("S9", "Indiscriminate Weapons", "weapons"),
    ("S10", "Hate", "hate"),
    ("S11", "Suicide & Self-Harm", "self-harm"),
    ("S12", "Sexual Content", "sexual"),
    ("S13", "Elections", "elections"),
    ("S14", "Code Interpreter Abuse", "code-interpreter-abuse"),
];

/// The text prompt exactly as Llama Guard 3's model card gives it.
pub fn prompt(text: &str) -> String {
    let categories: String = HAZARDS
        .iter()
        .map(|(code, name, _)| format!("{code}: {name}.\n"))
        .collect();
    format!(
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n\
         Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy with the below categories.\n\n\
         <BEGIN UNSAFE CONTENT CATEGORIES>\n{categories}<END UNSAFE CONTENT CATEGORIES>\n\n\
         <BEGIN CONVERSATION>\n\nUser: {text}\n\n<END CONVERSATION>\n\n\
         Provide your safety assessment for ONLY THE LAST User message in the above conversation:\n \
         - First line must read 'safe' or 'unsafe'.\n \
         - If unsafe, a second line must include a comma-separated list of violated categories.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
}

/// What Llama Guard answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub unsafe_: bool,
    /// Hazard codes as given, e.g. `["S1", "S10"]`.
    pub codes: Vec<String>,
    /// Probability of `unsafe` from the first token's log-probabilities.
    pub unsafe_probability: Option<f64>,
}

/// Parses `safe` or `unsafe\nS1,S10`; anything else is unreadable.
pub fn parse_assessment(text: &str) -> Result<(bool, Vec<String>), String> {
    let mut lines = text.trim().lines().map(str::trim).filter(|l| !l.is_empty());
    let verdict = lines.next().unwrap_or_default().to_ascii_lowercase();
    match verdict.as_str() {
        "safe" => Ok((false, Vec::new())),
        "unsafe" => {
            let codes: Vec<String> = lines
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|c| c.trim().to_ascii_uppercase())
                .filter(|c| !c.is_empty())
                .collect();
            if let Some(unknown) = codes
                .iter()
                .find(|c| !HAZARDS.iter().any(|(code, ..)| code == c))
            {
                return Err(format!("unknown hazard code `{unknown}`"));
            }
            Ok((true, codes))
        }
        _ => Err(format!(
            "expected `safe` or `unsafe`, got `{}`",
            text.chars().take(80).collect::<String>()
        )),
    }
}

/// Probability of `unsafe` among the first token's alternatives.
fn unsafe_probability(alternatives: &[(String, f64)]) -> Option<f64> {
    let probability = |word: &str| {
        alternatives
            .iter()
            .filter(|(token, _)| token.trim().eq_ignore_ascii_case(word))
            .map(|(_, logprob)| logprob.exp())
            .sum::<f64>()
    };
    let (unsafe_, safe) = (probability("unsafe"), probability("safe"));
    (unsafe_ + safe > 0.0).then(|| unsafe_ / (unsafe_ + safe))
}

/// A `/v1/completions` answer (text).
pub fn parse_completion(answer: &Value) -> Result<Assessment, String> {
    let choice = first_choice(answer)?;
    let text = choice
        .get("text")
        .and_then(Value::as_str)
        .ok_or("no `text`")?;
    let alternatives: Vec<(String, f64)> = choice
        .pointer("/logprobs/top_logprobs/0")
        .and_then(Value::as_object)
        .map(|top| {
            top.iter()
                .filter_map(|(token, lp)| Some((token.clone(), lp.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    assess(text, &alternatives)
}

/// A `/v1/chat/completions` answer (vision).
pub fn parse_chat(answer: &Value) -> Result<Assessment, String> {
    let choice = first_choice(answer)?;
    let text = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or("no `message.content`")?;
    let alternatives: Vec<(String, f64)> = choice
        .pointer("/logprobs/content/0/top_logprobs")
        .and_then(Value::as_array)
        .map(|top| {
            top.iter()
                .filter_map(|t| {
                    Some((
                        t.get("token")?.as_str()?.to_owned(),
                        t.get("logprob")?.as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    assess(text, &alternatives)
}

fn assess(text: &str, first_token_alternatives: &[(String, f64)]) -> Result<Assessment, String> {
    let (unsafe_, codes) = parse_assessment(text)?;
    Ok(Assessment {
        unsafe_,
        codes,
        unsafe_probability: unsafe_probability(first_token_alternatives),
    })
}

fn first_choice(answer: &Value) -> Result<&Value, String> {
    answer
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| "no `choices`".to_owned())
}

pub struct LlamaGuard {
    id: &'static str,
    backend: RemoteBackend,
}

impl LlamaGuard {
    pub fn text(
        settings: &RemoteClassifierConfig,
        raw: &Path,
        shard: Option<Shard>,
    ) -> Result<Self> {
        Ok(LlamaGuard {
            id: "llama-guard",
            backend: RemoteBackend::new("llama-guard", settings, raw, shard)?,
        })
    }

    pub fn vision(
        settings: &RemoteClassifierConfig,
        raw: &Path,
        shard: Option<Shard>,
    ) -> Result<Self> {
        Ok(LlamaGuard {
            id: "llama-guard-vision",
            backend: RemoteBackend::new("llama-guard-vision", settings, raw, shard)?,
        })
    }

    fn verdict(&self, assessment: Assessment) -> ClassifierVerdict {
        let score = assessment
            .unsafe_probability
            .unwrap_or(if assessment.unsafe_ { 1.0 } else { 0.0 });
        // A greedy answer of `unsafe` outranks a probability that rounds
        // below the threshold: the model said it.
        let unsafe_score = if assessment.unsafe_ {
            score.max(self.backend.band.threshold)
        } else {
            score
        };
        let mut scores: BTreeMap<String, f64> = BTreeMap::new();
        for code in &assessment.codes {
            if let Some((_, _, category)) = HAZARDS.iter().find(|(c, ..)| c == code) {
                scores.insert((*category).to_owned(), unsafe_score);
            }
        }
        let judgement = self.backend.band.judge(unsafe_score);
        let reasons = match judgement {
            Judgement::Safe => Vec::new(),
            _ if scores.is_empty() => vec![format!("{}:unsafe", self.id)],
            _ => scores.keys().map(|c| format!("{}:{c}", self.id)).collect(),
        };
        ClassifierVerdict {
            classifier: self.id.to_owned(),
            version: self.backend.model.clone(),
            weights_sha256: None,
            scores,
            unsafe_score,
            judgement,
            reasons,
            detail: if assessment.unsafe_ {
                format!(
                    "unsafe {} (p={unsafe_score:.3})",
                    assessment.codes.join(",")
                )
            } else {
                format!("safe (p(unsafe)={unsafe_score:.3})")
            },
        }
    }
}

impl TextClassifier for LlamaGuard {
    fn id(&self) -> &str {
        self.id
    }

    fn version(&self) -> &str {
        &self.backend.model
    }

    fn classify(&self, texts: &[&str]) -> Result<Vec<ClassifierVerdict>> {
        let bodies: Vec<Value> = texts
            .iter()
            .map(|text| {
                json!({
                    "model": self.backend.model,
                    "prompt": prompt(text),
                    "max_tokens": 20,
                    "temperature": 0,
                    "logprobs": 5,
                })
            })
            .collect();
        let assessments = self
            .backend
            .post_all("completions", &bodies, parse_completion)?;
        Ok(assessments.into_iter().map(|a| self.verdict(a)).collect())
    }
}

impl ImageClassifier for LlamaGuard {
    fn id(&self) -> &str {
        self.id
    }

    fn version(&self) -> &str {
        &self.backend.model
    }

    fn classify(&self, images: &[&[u8]]) -> Result<Vec<ClassifierVerdict>> {
        let bodies: Vec<Value> = images
            .iter()
            .map(|bytes| {
                json!({
                    "model": self.backend.model,
                    "messages": [{"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": pixels::data_url(bytes)}},
                        {"type": "text", "text": "Describe this image."},
                    ]}],
                    "max_tokens": 20,
                    "temperature": 0,
                    "logprobs": true,
                    "top_logprobs": 5,
                })
            })
            .collect();
        let assessments = self
            .backend
            .post_all("chat/completions", &bodies, parse_chat)?;
        Ok(assessments.into_iter().map(|a| self.verdict(a)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_safe_and_unsafe_with_codes() {
        assert_eq!(parse_assessment("safe"), Ok((false, vec![])));
        assert_eq!(
            parse_assessment("\n\nunsafe\nS1,S10"),
            Ok((true, vec!["S1".to_owned(), "S10".to_owned()]))
        );
        assert_eq!(
            parse_assessment("unsafe\nS11 , s2"),
            Ok((true, vec!["S11".into(), "S2".into()]))
        );
        assert!(parse_assessment("I'm sorry, I can't help").is_err());
        assert!(parse_assessment("unsafe\nS99").is_err());
    }

    #[test]
    fn the_probability_of_unsafe_comes_from_the_first_token() {
        let answer = json!({"choices": [{"text": "unsafe\nS9", "logprobs": {
            "tokens": ["unsafe", "\n", "S9"],
            "top_logprobs": [{"unsafe": (0.8f64).ln(), "safe": (0.2f64).ln()}]
        }}]});
        let assessment = parse_completion(&answer).expect("well-formed");
        assert!(assessment.unsafe_);
        assert!((assessment.unsafe_probability.unwrap_or(0.0) - 0.8).abs() < 1e-9);
    }

    #[test]
    fn the_prompt_lists_every_category_and_the_user_message() {
        let text = prompt("How do I bake bread?");
        assert!(text.contains("S14: Code Interpreter Abuse."));
        assert!(text.contains("User: How do I bake bread?\n\n<END CONVERSATION>"));
        assert!(text.ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n"));
    }
}
