//! Stage 3: drop exact duplicates. A candidate duplicates a case when both
//! its normalized question and its decoded pixels match a case already kept,
//! earlier in this run (lower id) or in any release (oldest release first).
//! The same image with another question, or the same question with another
//! image, is a different case.
//!
//! Output: `dedupe/verdicts.jsonl`, one per candidate that passed check.

use std::collections::{BTreeMap, BTreeSet};

use super::{Stage, StageReport, check};
use crate::config::{Config, DedupeConfig};
use crate::content_hash::{ContentHasher, Digest};
use crate::error::Result;
use crate::input_file;
use crate::pixels;
use crate::progress::Progress;
use crate::project::Project;
use crate::record::{Candidate, CheckVerdict, Decision, DedupeVerdict, DuplicateOf, Fingerprint};
use crate::release;
use crate::text_normal;

pub use super::VERDICTS;

pub fn key(project: &Project, check_key: &str) -> Digest {
    ContentHasher::new("siuo.stage.dedupe.v1")
        .str(check_key)
        .str(&Config::digest_of(&project.settings().dedupe).hex())
        .finish()
}

pub fn question_digest(question: &str) -> Digest {
    ContentHasher::new("siuo.question.normalized.v1")
        .str(&text_normal::normalize(question))
        .finish()
}

/// Fingerprints of every released case, each mapped to its oldest release.
pub fn released_fingerprints(project: &Project) -> Result<BTreeMap<Fingerprint, DuplicateOf>> {
    let mut index = BTreeMap::new();
    for release in release::list(&project.curated())? {
        let mut cases = release.cases()?;
        cases.sort_by_key(|c| c.question_id);
        for case in cases {
            index
                .entry(case.fingerprint)
                .or_insert(DuplicateOf::Release {
                    version: release.name(),
                    question_id: case.question_id,
                });
        }
    }
    Ok(index)
}

/// Candidates of a run that passed the check, sorted by id.
pub fn checked_candidates(project: &Project, run_id: &str) -> Result<Vec<Candidate>> {
    let verdicts_path = project
        .stage_dir(run_id, Stage::Check)
        .output(check::VERDICTS);
    let passed: BTreeSet<String> = input_file::read_jsonl::<CheckVerdict>(&verdicts_path)?
        .into_iter()
        .filter(|v| v.decision.is_keep())
        .map(|v| v.candidate_id)
        .collect();
    let mut candidates: Vec<Candidate> = check::read_candidates(project, run_id)?
        .into_iter()
        .filter(|c| passed.contains(&c.id))
        .collect();
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(candidates)
}

pub fn run(project: &Project) -> Result<StageReport> {
    let (run_id, checked) = check::require(project, Stage::Dedupe)?;
    let key = key(project, &checked.key);
    let stage_dir = project.stage_dir(&run_id, Stage::Dedupe);
    if let Some(report) = stage_dir.finished(&key)? {
        return Ok(report);
    }
    let DedupeConfig::Exact(settings) = &project.settings().dedupe;
    let released = if settings.against_releases {
        released_fingerprints(project)?
    } else {
        BTreeMap::new()
    };
    let candidates = checked_candidates(project, &run_id)?;
    let images = project.images();
    let mut journal = stage_dir.journal::<DedupeVerdict>(&key)?;
    // Rebuild the kept set from finished items so a resumed run decides
    // exactly as an uninterrupted one.
    let mut kept: BTreeMap<Fingerprint, String> = BTreeMap::new();
    for verdict in journal.entries() {
        if let (Decision::Keep, Some(fingerprint)) = (&verdict.decision, &verdict.fingerprint) {
            kept.insert(fingerprint.clone(), verdict.candidate_id.clone());
        }
    }
    let done: BTreeSet<String> = journal
        .entries()
        .iter()
        .map(|v| v.candidate_id.clone())
        .collect();
    let progress = Progress::new("dedupe", candidates.len(), project.interactive);
    progress.skip(done.len());
    for candidate in candidates.iter().filter(|c| !done.contains(&c.id)) {
        progress.before_item();
        let decoded = images
            .read(&candidate.image)
            .map_err(|e| e.to_string())
            .and_then(|b| pixels::decode(&b));
        let verdict = match decoded {
            Err(error) => {
                progress.suspend(|| eprintln!("dedupe: candidate {}: {error}", candidate.id));
                DedupeVerdict {
                    candidate_id: candidate.id.clone(),
                    fingerprint: None,
                    duplicate_of: None,
                    decision: Decision::Reject {
                        reasons: vec!["dedupe:unreadable-image".to_owned()],
                    },
                }
            }
            Ok(image) => {
                let fingerprint = Fingerprint {
                    question_blake3: question_digest(&candidate.question).hex(),
                    pixels_blake3: pixels::digest(&image).hex(),
                };
                let duplicate_of = released.get(&fingerprint).cloned().or_else(|| {
                    kept.get(&fingerprint).map(|id| DuplicateOf::Run {
                        candidate_id: id.clone(),
                    })
                });
                let decision = match &duplicate_of {
                    None => {
                        kept.insert(fingerprint.clone(), candidate.id.clone());
                        Decision::Keep
                    }
                    Some(DuplicateOf::Run { .. }) => Decision::Reject {
                        reasons: vec!["dedupe:duplicate-in-run".to_owned()],
                    },
                    Some(DuplicateOf::Release { .. }) => Decision::Reject {
                        reasons: vec!["dedupe:duplicate-of-release".to_owned()],
                    },
                };
                DedupeVerdict {
                    candidate_id: candidate.id.clone(),
                    fingerprint: Some(fingerprint),
                    duplicate_of,
                    decision,
                }
            }
        };
        if project.interactive
            && let Some(of) = &verdict.duplicate_of
        {
            let what = match of {
                DuplicateOf::Run { candidate_id } => {
                    format!("candidate {candidate_id} of this run")
                }
                DuplicateOf::Release {
                    version,
                    question_id,
                } => format!("question_id {question_id} of {version}"),
            };
            progress.suspend(|| eprintln!("dedupe: candidate {} duplicates {what}", candidate.id));
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
        |kept, processed| format!("{kept} of {processed} checked candidates are not duplicates"),
    )
}

pub fn require(project: &Project, stage: Stage) -> Result<(String, StageReport)> {
    let (run_id, checked) = check::require(project, stage)?;
    let report = super::require(
        project,
        &run_id,
        Stage::Dedupe,
        &key(project, &checked.key),
        stage,
    )?;
    Ok((run_id, report))
}
