//! Stage 2: prove each modality is safe on its own. Every candidate gets a
//! verdict with every classifier's scores; none is dropped.
//!
//! Output: `check/verdicts.jsonl`, sorted by candidate id.

use std::collections::BTreeSet;

use super::{StageInput, StageReport, StageSpec};
use crate::project::Project;
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::progress::Progress;
use siuo_core::record::{Candidate, CheckVerdict, Decision};

pub use super::VERDICTS;

pub const STAGE: StageSpec = StageSpec {
    name: "check",
    about: "Check that the question and the image of every candidate are each safe alone",
    filters: true,
    key,
    run,
    vouches: None,
    shardable: true,
};

/// Candidates judged per batch: big enough to keep every core (or every
/// in-flight slot of a remote backend) busy, small enough that a crash
/// loses little work.
const BATCH: usize = 32;

/// Key of the check stage: its inputs' key and what judges a candidate.
fn key(project: &Project, generate_key: Option<&Digest>) -> Result<Digest> {
    Ok(ContentHasher::new("siuo.stage.check.v2")
        .str(&generate_key.map(Digest::hex).unwrap_or_default())
        .str(&judging_key(project)?.hex())
        .finish())
}

/// What a verdict depends on besides its candidate: the config and the
/// classifiers. The journal is kept under this key, so a new candidate in
/// the run (a reviewer's revision) is judged alone, not the whole run again.
fn judging_key(project: &Project) -> Result<Digest> {
    let classifiers = project.classifiers()?;
    let mut hasher = ContentHasher::new("siuo.stage.check.judging.v1");
    hasher.str(&siuo_core::content_hash::digest_of(&project.settings().check).hex());
    for (modality, id, version) in classifiers.ids() {
        hasher.str(modality).str(&id).str(&version);
    }
    Ok(hasher.finish())
}

fn run(project: &Project, input: &StageInput) -> Result<StageReport> {
    let (key, run_id, stage_dir) = (&input.key, &input.run_id, &input.dir);
    let classifiers = project.classifiers()?;
    let candidates = input.survivors(project)?;
    let images = project.images();
    let mut journal = stage_dir.verdict_journal::<CheckVerdict>(&judging_key(project)?)?;
    let progress = Progress::new(STAGE.name, candidates.len(), project.interactive);
    let pending = super::pending(
        &candidates,
        |id| journal.is_done(id),
        input.shard,
        &progress,
    );
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
            run: run_id.clone(),
            failed,
            first,
        });
    }

    let ids: BTreeSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    super::finish_journaled(stage_dir, key, &journal, &ids, |kept, processed| {
        format!("{kept} of {processed} candidates passed both the text and the image check")
    })
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
