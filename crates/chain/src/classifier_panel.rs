//! The classifier panel of the unimodal check: every configured text and
//! image classifier, and the policy that combines their verdicts into one
//! decision per candidate. Used by the check stage and by `siuo calibrate`,
//! so both decide exactly alike. It never reads or writes stage records.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::image_classifier::config::{ImageClassifierConfig, ImageModelConfig, ValidatorConfig};
use crate::image_classifier::{self, ImageClassifier};
use crate::text_classifier::config::{LexiconConfig, MiniLmConfig, TextClassifierConfig};
use crate::text_classifier::{self, TextClassifier};
use siuo_core::error::{Error, Result};
use siuo_core::image_store::ImageStore;
use siuo_core::record::{Candidate, CheckVerdict, ClassifierVerdict, Decision, Judgement};
use siuo_core::text_normal;

/// The `check` section: the classifiers of each modality and how they combine.
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

impl CheckConfig {
    /// Problems of the `check` section.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.text.is_empty() {
            problems.push("check.text needs at least one classifier".to_owned());
        }
        if self.image.is_empty() {
            problems.push("check.image needs at least one classifier".to_owned());
        }
        for (index, classifier) in self.text.iter().enumerate() {
            problems.extend(classifier.problems(&format!("check.text[{index}]")));
        }
        for (index, classifier) in self.image.iter().enumerate() {
            problems.extend(classifier.problems(&format!("check.image[{index}]")));
        }
        problems
    }
}

pub struct ClassifierPanel {
    pub text: Vec<Box<dyn TextClassifier>>,
    pub image: Vec<Box<dyn ImageClassifier>>,
    pub combine: CombineRule,
}

impl ClassifierPanel {
    /// Builds every configured classifier (embedded models are loaded and
    /// verified here). Paths: the project root, the models and raw folders.
    pub fn build(
        check: &CheckConfig,
        root: &Path,
        models: &Path,
        raw: &Path,
        shard: Option<siuo_core::shard::Shard>,
    ) -> Result<Self> {
        Ok(ClassifierPanel {
            text: check
                .text
                .iter()
                .map(|c| build_text(c, root, models, raw, shard))
                .collect::<Result<_>>()?,
            image: check
                .image
                .iter()
                .map(|c| build_image(c, models, raw, shard))
                .collect::<Result<_>>()?,
            combine: check.combine,
        })
    }

    /// `(modality, id, version)` of every classifier, in config order.
    pub fn ids(&self) -> Vec<(&'static str, String, String)> {
        let text = self
            .text
            .iter()
            .map(|c| ("text", c.id().to_owned(), c.version().to_owned()));
        let image = self
            .image
            .iter()
            .map(|c| ("image", c.id().to_owned(), c.version().to_owned()));
        text.chain(image).collect()
    }

    /// Verdicts of a batch of candidates, in order; an error (a remote
    /// backend that stayed down, or one that answered for fewer or more
    /// inputs than it was given) leaves the whole batch unjudged.
    pub fn verdicts(
        &self,
        candidates: &[&Candidate],
        images: &ImageStore,
    ) -> Result<Vec<CheckVerdict>> {
        // Classifiers read the text as a reader sees it (no invisible
        // characters, look-alike letters folded), never the raw bytes.
        let visible: Vec<String> = candidates
            .iter()
            .map(|c| text_normal::visible(&c.question))
            .collect();
        let questions: Vec<&str> = visible.iter().map(String::as_str).collect();
        let mut text: Vec<Vec<ClassifierVerdict>> = candidates
            .iter()
            .map(|c| hygiene_verdict(&c.question).into_iter().collect())
            .collect();
        for classifier in &self.text {
            let verdicts = complete(
                classifier.id(),
                questions.len(),
                classifier.classify(&questions)?,
            )?;
            for (all, verdict) in text.iter_mut().zip(verdicts) {
                all.push(verdict);
            }
        }
        let stored: Vec<Result<Vec<u8>>> =
            candidates.iter().map(|c| images.read(&c.image)).collect();
        let readable: Vec<&[u8]> = stored
            .iter()
            .filter_map(|s| s.as_ref().ok().map(Vec::as_slice))
            .collect();
        let mut image_verdicts = vec![Vec::new(); readable.len()];
        for classifier in &self.image {
            let verdicts = complete(
                classifier.id(),
                readable.len(),
                classifier.classify(&readable)?,
            )?;
            for (all, verdict) in image_verdicts.iter_mut().zip(verdicts) {
                all.push(verdict);
            }
        }
        let mut image_verdicts = image_verdicts.into_iter();
        Ok(candidates
            .iter()
            .zip(stored)
            .zip(text)
            .map(|((candidate, stored), text)| {
                let image = match stored {
                    // As many as there are readable images, checked above.
                    Ok(_) => image_verdicts.next().unwrap_or_default(),
                    Err(error) => vec![ClassifierVerdict {
                        classifier: "image-store".to_owned(),
                        version: "1".to_owned(),
                        weights_sha256: None,
                        scores: Default::default(),
                        unsafe_score: 1.0,
                        judgement: Judgement::Unsafe,
                        reasons: vec!["missing".to_owned()],
                        detail: error.to_string(),
                    }],
                };
                self.decide(candidate, text, image)
            })
            .collect())
    }

    /// One candidate's decision from its text and image verdicts.
    pub fn decide(
        &self,
        candidate: &Candidate,
        text: Vec<ClassifierVerdict>,
        image: Vec<ClassifierVerdict>,
    ) -> CheckVerdict {
        let (text_judgement, text_reasons) = self.judge_modality(&text);
        let (image_judgement, image_reasons) = self.judge_modality(&image);
        let labelled = |modality: &str, reasons: Vec<String>| {
            reasons
                .into_iter()
                .map(|r| format!("{modality}:{r}"))
                .collect::<Vec<_>>()
        };
        let worst = text_judgement.max(image_judgement);
        let mut reasons = Vec::new();
        if text_judgement == worst {
            reasons.extend(labelled("text", text_reasons));
        }
        if image_judgement == worst {
            reasons.extend(labelled("image", image_reasons));
        }
        CheckVerdict {
            candidate_id: candidate.id.clone(),
            text,
            image,
            decision: match worst {
                Judgement::Safe => Decision::Keep,
                // Counted apart from rejections in reports and `siuo status`.
                Judgement::Review => Decision::Review {
                    reasons: reasons.into_iter().map(|r| format!("review:{r}")).collect(),
                },
                Judgement::Unsafe => Decision::Reject { reasons },
            },
        }
    }

    /// The policy: one modality's judgement from its classifiers' verdicts,
    /// with the reasons of the verdicts that decided it (empty when safe).
    pub fn judge_modality(&self, verdicts: &[ClassifierVerdict]) -> (Judgement, Vec<String>) {
        let count = |j: Judgement| verdicts.iter().filter(|v| v.judgement == j).count();
        let unsafe_count = count(Judgement::Unsafe);
        let flagged = unsafe_count + count(Judgement::Review);
        let judgement = match self.combine {
            CombineRule::AnyUnsafe if unsafe_count > 0 => Judgement::Unsafe,
            CombineRule::Majority if unsafe_count * 2 > verdicts.len() => Judgement::Unsafe,
            CombineRule::AllUnsafe if !verdicts.is_empty() && unsafe_count == verdicts.len() => {
                Judgement::Unsafe
            }
            _ if flagged > 0 => Judgement::Review,
            _ => Judgement::Safe,
        };
        let reasons = verdicts
            .iter()
            .filter(|v| v.judgement != Judgement::Safe)
            .filter(|v| judgement == Judgement::Review || v.judgement == Judgement::Unsafe)
            .flat_map(|v| {
                if v.reasons.is_empty() {
                    vec![v.classifier.clone()]
                } else {
                    v.reasons.clone()
                }
            })
            .collect();
        (judgement, reasons)
    }
}

/// `root` resolves relative paths of the config; `models_dir` holds the
/// verified model files; `raw` the response cache of remote backends.
fn build_text(
    config: &TextClassifierConfig,
    root: &Path,
    models_dir: &Path,
    raw: &Path,
    shard: Option<siuo_core::shard::Shard>,
) -> Result<Box<dyn TextClassifier>> {
    Ok(match config {
        TextClassifierConfig::Lexicon(lexicon) => Box::new(
            text_classifier::lexicon::Lexicon::load(&root.join(&lexicon.path))?,
        ),
        TextClassifierConfig::Minilm(settings) => Box::new(
            text_classifier::minilm::MiniLmClassifier::load(settings, root, models_dir)?,
        ),
        TextClassifierConfig::OpenaiModeration(remote) => Box::new(
            crate::remote_classifier::moderation::ModerationClassifier::new(remote, raw, shard)?,
        ),
        TextClassifierConfig::LlamaGuard(remote) => Box::new(
            crate::remote_classifier::llama_guard::LlamaGuard::text(remote, raw, shard)?,
        ),
    })
}

fn build_image(
    config: &ImageClassifierConfig,
    models_dir: &Path,
    raw: &Path,
    shard: Option<siuo_core::shard::Shard>,
) -> Result<Box<dyn ImageClassifier>> {
    Ok(match config {
        ImageClassifierConfig::Validator(settings) => Box::new(
            image_classifier::validator::ImageValidator::new(settings.clone()),
        ),
        ImageClassifierConfig::ImageSafety(settings) => Box::new(
            image_classifier::onnx_model::OnnxImageClassifier::image_safety(settings, models_dir)?,
        ),
        ImageClassifierConfig::OpenNsfw(settings) => Box::new(
            image_classifier::onnx_model::OnnxImageClassifier::open_nsfw(settings, models_dir)?,
        ),
        ImageClassifierConfig::OpenaiModeration(remote) => Box::new(
            crate::remote_classifier::moderation::ModerationClassifier::new(remote, raw, shard)?,
        ),
        ImageClassifierConfig::LlamaGuardVision(remote) => Box::new(
            crate::remote_classifier::llama_guard::LlamaGuard::vision(remote, raw, shard)?,
        ),
    })
}

/// Id of the verdict on text that displays otherwise than it reads.
pub const TEXT_HYGIENE: &str = "text-hygiene";

/// An unsafe verdict for a question with bidirectional controls: what the
/// classifiers read is not what a reader sees, so no classifier can vouch
/// for it. `None` for every other question (no verdict is recorded).
pub fn hygiene_verdict(question: &str) -> Option<ClassifierVerdict> {
    text_normal::has_bidi_controls(question).then(|| ClassifierVerdict {
        classifier: TEXT_HYGIENE.to_owned(),
        version: "1".to_owned(),
        weights_sha256: None,
        scores: Default::default(),
        unsafe_score: 1.0,
        judgement: Judgement::Unsafe,
        reasons: vec![format!("{TEXT_HYGIENE}:bidi-control")],
        detail: "bidirectional control characters reorder the text on screen".to_owned(),
    })
}

/// A classifier's verdicts, one per input: any other count is an error, so
/// an input can never be left without a verdict (and pass as safe).
pub fn complete(
    classifier: &str,
    inputs: usize,
    verdicts: Vec<ClassifierVerdict>,
) -> Result<Vec<ClassifierVerdict>> {
    if verdicts.len() == inputs {
        return Ok(verdicts);
    }
    Err(Error::Backend {
        stage: "check",
        backend: classifier.to_owned(),
        record: format!("a batch of {inputs} inputs"),
        message: format!(
            "returned {} verdicts for {inputs} inputs; the batch stays unjudged",
            verdicts.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(classifier: &str, judgement: Judgement) -> ClassifierVerdict {
        ClassifierVerdict {
            classifier: classifier.to_owned(),
            version: "1".to_owned(),
            weights_sha256: None,
            scores: Default::default(),
            unsafe_score: 0.0,
            judgement,
            reasons: if judgement == Judgement::Safe {
                vec![]
            } else {
                vec![format!("{classifier}:x")]
            },
            detail: String::new(),
        }
    }

    fn judge(combine: CombineRule, judgements: &[Judgement]) -> (Judgement, Vec<String>) {
        let classifiers = ClassifierPanel {
            text: Vec::new(),
            image: Vec::new(),
            combine,
        };
        let verdicts: Vec<ClassifierVerdict> = judgements
            .iter()
            .enumerate()
            .map(|(i, j)| verdict(&format!("c{i}"), *j))
            .collect();
        classifiers.judge_modality(&verdicts)
    }

    /// Answers for every input but the last: a remote API that dropped one.
    struct DropsOne;

    impl TextClassifier for DropsOne {
        fn id(&self) -> &str {
            "drops-one"
        }
        fn version(&self) -> &str {
            "1"
        }
        fn classify(&self, texts: &[&str]) -> Result<Vec<ClassifierVerdict>> {
            Ok(texts
                .iter()
                .skip(1)
                .map(|_| verdict("drops-one", Judgement::Safe))
                .collect())
        }
    }

    #[test]
    fn a_short_verdict_list_is_an_error_not_a_pass() -> Result<()> {
        let raw = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let images = ImageStore::new(raw.path());
        let panel = ClassifierPanel {
            text: vec![Box::new(DropsOne)],
            image: Vec::new(),
            combine: CombineRule::AnyUnsafe,
        };
        let image = images.put(b"not decoded here", "x.png")?;
        let candidate = |id: &str| Candidate {
            id: id.to_owned(),
            domain: "self-harm".into(),
            subcategory: "x".into(),
            question: format!("question {id}"),
            image: image.clone(),
            image_description: String::new(),
            safety_warning: String::new(),
            reference_answer: String::new(),
            provenance: siuo_core::record::Provenance::default(),
            control_of: None,
            revision_of: None,
        };
        let (a, b) = (candidate("a"), candidate("b"));
        let message = match panel.verdicts(&[&a, &b], &images) {
            Ok(verdicts) => panic!("judged with a missing verdict: {verdicts:?}"),
            Err(error) => error.to_string(),
        };
        assert_eq!(
            message,
            "drops-one backend (check stage): a batch of 2 inputs: returned 1 verdicts for 2 inputs; the batch stays unjudged"
        );
        Ok(())
    }

    #[test]
    fn each_combine_rule_decides_and_names_the_deciding_verdicts() {
        use Judgement::{Review, Safe, Unsafe};
        let one_of_three = [Unsafe, Safe, Safe];
        assert_eq!(
            judge(CombineRule::AnyUnsafe, &one_of_three),
            (Unsafe, vec!["c0:x".into()])
        );
        assert_eq!(
            judge(CombineRule::Majority, &one_of_three),
            (Review, vec!["c0:x".into()])
        );
        assert_eq!(
            judge(CombineRule::AllUnsafe, &one_of_three),
            (Review, vec!["c0:x".into()])
        );
        let two_of_three = [Unsafe, Unsafe, Review];
        assert_eq!(judge(CombineRule::Majority, &two_of_three).0, Unsafe);
        assert_eq!(
            judge(CombineRule::Majority, &two_of_three).1,
            vec!["c0:x".to_owned(), "c1:x".to_owned()]
        );
        assert_eq!(judge(CombineRule::AllUnsafe, &two_of_three).0, Review);
        assert_eq!(judge(CombineRule::AllUnsafe, &[Unsafe, Unsafe]).0, Unsafe);
        assert_eq!(
            judge(CombineRule::AnyUnsafe, &[Review, Safe]),
            (Review, vec!["c0:x".into()])
        );
        assert_eq!(judge(CombineRule::AnyUnsafe, &[Safe, Safe]), (Safe, vec![]));
    }
}
