//! Stage 2: prove each modality is safe on its own. Every candidate gets a
//! verdict with every classifier's scores; none is dropped.
//!
//! Output: `check/verdicts.jsonl`, sorted by candidate id.

use std::collections::BTreeSet;

use super::{Stage, StageReport, generate};
use crate::config::{CombineRule, Config};
use crate::content_hash::{ContentHasher, Digest};
use crate::error::Result;
use crate::image_classifier::{self, ImageClassifier};
use crate::input_file;
use crate::progress::Progress;
use crate::project::Project;
use crate::record::{Candidate, CheckVerdict, ClassifierVerdict, Decision};
use crate::text_classifier::{self, TextClassifier};

pub use super::VERDICTS;

pub struct Classifiers {
    pub text: Vec<Box<dyn TextClassifier>>,
    pub image: Vec<Box<dyn ImageClassifier>>,
    pub combine: CombineRule,
}

impl Classifiers {
    pub fn build(project: &Project) -> Result<Self> {
        let check = &project.settings().check;
        Ok(Classifiers {
            text: check
                .text
                .iter()
                .map(|c| text_classifier::build(c, &project.config.root))
                .collect::<Result<_>>()?,
            image: check.image.iter().map(image_classifier::build).collect(),
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

    fn verdict(&self, candidate: &Candidate, image_bytes: Result<Vec<u8>>) -> CheckVerdict {
        let text = self.text_verdicts(&candidate.question);
        let image = match &image_bytes {
            Ok(bytes) => self.image_verdicts(bytes),
            Err(error) => vec![ClassifierVerdict {
                classifier: "image-store".to_owned(),
                version: "1".to_owned(),
                scores: Default::default(),
                unsafe_score: 1.0,
                safe: false,
                reasons: vec!["missing".to_owned()],
                detail: error.to_string(),
            }],
        };
        let reasons: Vec<String> = self
            .failures(&text)
            .iter()
            .map(|r| format!("text:{r}"))
            .chain(self.failures(&image).iter().map(|r| format!("image:{r}")))
            .collect();
        CheckVerdict {
            candidate_id: candidate.id.clone(),
            text,
            image,
            decision: if reasons.is_empty() {
                Decision::Keep
            } else {
                Decision::Reject { reasons }
            },
        }
    }

    pub fn text_verdicts(&self, text: &str) -> Vec<ClassifierVerdict> {
        self.text.iter().map(|c| c.classify(text)).collect()
    }

    pub fn image_verdicts(&self, bytes: &[u8]) -> Vec<ClassifierVerdict> {
        self.image.iter().map(|c| c.classify(bytes)).collect()
    }

    /// The policy: why one modality fails, from its classifiers' verdicts;
    /// empty when it passes.
    pub fn failures(&self, verdicts: &[ClassifierVerdict]) -> Vec<String> {
        match self.combine {
            CombineRule::AnyUnsafe => verdicts
                .iter()
                .filter(|v| !v.safe)
                .flat_map(|v| {
                    if v.reasons.is_empty() {
                        vec![v.classifier.clone()]
                    } else {
                        v.reasons.clone()
                    }
                })
                .collect(),
        }
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
    let classifiers = Classifiers::build(project)?;
    let key = key(project, &generated.key, &classifiers);
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
    for candidate in candidates.iter().filter(|c| !done.contains(&c.id)) {
        progress.before_item();
        let verdict = classifiers.verdict(candidate, images.read(&candidate.image));
        if project.interactive && !verdict.decision.is_keep() {
            let details: Vec<String> = verdict
                .text
                .iter()
                .chain(&verdict.image)
                .filter(|v| !v.safe)
                .map(|v| format!("{}: {}", v.classifier, v.detail))
                .collect();
            progress.suspend(|| {
                eprintln!(
                    "check: rejected candidate {} ({}, image {}): {}",
                    candidate.id,
                    candidate.provenance.origin,
                    candidate.provenance.image_file,
                    details.join("; ")
                );
            });
        }
        journal.append(verdict)?;
        progress.item_done();
    }
    progress.finish();

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

/// The run id, the finished check report and its key, which `stage` needs.
pub fn require(project: &Project, stage: Stage) -> Result<(String, StageReport)> {
    let (run_id, generated) = generate::require(project, stage)?;
    let classifiers = Classifiers::build(project)?;
    let key = key(project, &generated.key, &classifiers);
    let report = super::require(project, &run_id, Stage::Check, &key, stage)?;
    Ok((run_id, report))
}
