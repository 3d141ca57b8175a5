//! Stage 2: prove each modality is safe on its own. Every candidate gets a
//! verdict with every classifier's scores; none is dropped.
//!
//! Output: `check/verdicts.jsonl`, sorted by candidate id.

use std::collections::BTreeSet;

use super::{Stage, StageReport, generate};
use crate::config::{CombineRule, Config};
use crate::content_hash::{ContentHasher, Digest};
use crate::error::{Error, Result};
use crate::image_classifier::{self, ImageClassifier};
use crate::image_store::ImageStore;
use crate::input_file;
use crate::progress::Progress;
use crate::project::Project;
use crate::record::{Candidate, CheckVerdict, ClassifierVerdict, Decision, Judgement};
use crate::text_classifier::{self, TextClassifier};

pub use super::VERDICTS;

pub struct Classifiers {
    pub text: Vec<Box<dyn TextClassifier>>,
    pub image: Vec<Box<dyn ImageClassifier>>,
    pub combine: CombineRule,
}

/// Candidates judged per batch: big enough to keep every core (or every
/// in-flight slot of a remote backend) busy, small enough that a crash
/// loses little work.
const BATCH: usize = 32;

impl Classifiers {
    pub fn build(project: &Project) -> Result<Self> {
        let check = &project.settings().check;
        let models = project.config.path(&project.settings().models);
        let raw = project.raw();
        Ok(Classifiers {
            text: check
                .text
                .iter()
                .map(|c| text_classifier::build(c, &project.config.root, &models, &raw))
                .collect::<Result<_>>()?,
            image: check
                .image
                .iter()
                .map(|c| image_classifier::build(c, &models, &raw))
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
    /// backend that stayed down) leaves the whole batch unjudged.
    fn verdicts(
        &self,
        candidates: &[&Candidate],
        images: &ImageStore,
    ) -> Result<Vec<CheckVerdict>> {
        let questions: Vec<&str> = candidates.iter().map(|c| c.question.as_str()).collect();
        let mut text = vec![Vec::new(); candidates.len()];
        for classifier in &self.text {
            for (all, verdict) in text.iter_mut().zip(classifier.classify(&questions)?) {
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
            for (all, verdict) in image_verdicts
                .iter_mut()
                .zip(classifier.classify(&readable)?)
            {
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

    fn decide(
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

/// Key of the check stage: its inputs' key, its config and its classifiers.
pub fn key(project: &Project, generate_key: &str, classifiers: &Classifiers) -> Digest {
    let mut hasher = ContentHasher::new("siuo.stage.check.v1");
    hasher
        .str(generate_key)
        .str(&Config::digest_of(&project.settings().check).hex());
    for (modality, id, version) in classifiers.ids() {
        hasher.str(modality).str(&id).str(&version);
    }
    hasher.finish()
}

/// Reads the candidates of a run, checking every label against the taxonomy.
pub fn read_candidates(project: &Project, run_id: &str) -> Result<Vec<Candidate>> {
    let path = project
        .stage_dir(run_id, Stage::Generate)
        .output(generate::CANDIDATES);
    let candidates: Vec<Candidate> = input_file::read_jsonl(&path)?;
    for (index, candidate) in candidates.iter().enumerate() {
        let record = format!("line {} (candidate {})", index + 1, candidate.id);
        project
            .taxonomy
            .resolve(&path, &record, &candidate.domain, &candidate.subcategory)?;
    }
    Ok(candidates)
}

pub fn run(project: &Project) -> Result<StageReport> {
    let (run_id, generated) = generate::require(project, Stage::Check)?;
    let classifiers = project.classifiers()?;
    let key = key(project, &generated.key, classifiers);
    let stage_dir = project.stage_dir(&run_id, Stage::Check);
    if let Some(report) = stage_dir.finished(&key)? {
        return Ok(report);
    }
    let candidates = read_candidates(project, &run_id)?;
    let images = project.images();
    let mut journal = stage_dir.journal::<CheckVerdict>(&key)?;
    let done: BTreeSet<String> = journal
        .entries()
        .iter()
        .map(|v| v.candidate_id.clone())
        .collect();
    let progress = Progress::new("check", candidates.len(), project.interactive);
    progress.skip(done.len());
    let pending: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !done.contains(&c.id))
        .collect();
    let mut failed = 0;
    let mut first_failure = None;
    for batch in pending.chunks(BATCH) {
        let verdicts = match classifiers.verdicts(batch, &images) {
            Ok(verdicts) => verdicts,
            Err(error) => {
                // Unjudged candidates are not journaled: the next run retries them.
                failed += batch.len();
                first_failure.get_or_insert_with(|| error.to_string());
                progress.skip(batch.len());
                continue;
            }
        };
        for (candidate, verdict) in batch.iter().zip(verdicts) {
            progress.before_item();
            if project.interactive && !verdict.decision.is_keep() {
                report_unkept(&progress, candidate, &verdict);
            }
            journal.append(verdict)?;
            progress.item_done();
        }
    }
    progress.finish();
    if let Some(first) = first_failure {
        return Err(Error::Incomplete {
            run: run_id,
            failed,
            first,
        });
    }

    let ids: BTreeSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    super::finish_with_verdicts(
        &stage_dir,
        &key,
        journal.into_entries(),
        &ids,
        |kept, processed| {
            format!("{kept} of {processed} candidates passed both the text and the image check")
        },
    )
}

fn report_unkept(progress: &Progress, candidate: &Candidate, verdict: &CheckVerdict) {
    let details: Vec<String> = verdict
        .text
        .iter()
        .chain(&verdict.image)
        .filter(|v| !v.is_safe())
        .map(|v| format!("{}: {}", v.classifier, v.detail))
        .collect();
    let action = match verdict.decision {
        Decision::Review { .. } => "held for review",
        _ => "rejected",
    };
    progress.suspend(|| {
        eprintln!(
            "check: {action} candidate {} ({}, image {}): {}",
            candidate.id,
            candidate.provenance.origin,
            candidate.provenance.image_file,
            details.join("; ")
        );
    });
}

/// The run id, the finished check report and its key, which `stage` needs.
pub fn require(project: &Project, stage: Stage) -> Result<(String, StageReport)> {
    let (run_id, generated) = generate::require(project, stage)?;
    let classifiers = project.classifiers()?;
    let key = key(project, &generated.key, classifiers);
    let report = super::require(project, &run_id, Stage::Check, &key, stage)?;
    Ok((run_id, report))
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
        let classifiers = Classifiers {
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
