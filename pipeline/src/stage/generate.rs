//! Stage 1: ask the configured generator for candidates.
//!
//! Output: `generate/candidates.jsonl` (one record per distinct candidate,
//! sorted by id) and `generate/rejections.jsonl` (items that produced none).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Stage, StageReport, count_reasons};
use crate::atomic_file;
use crate::error::Result;
use crate::generator::{Generated, GenerationContext, Generator};
use crate::progress::Progress;
use crate::project::Project;
use crate::record::Candidate;

pub const CANDIDATES: &str = "candidates.jsonl";
pub const REJECTIONS: &str = "rejections.jsonl";

/// One finished work item in the journal.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: String,
    #[serde(flatten)]
    generated: Generated,
}

/// A work item that produced no candidate, and why.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rejection {
    pub key: String,
    pub reason: String,
    pub detail: String,
}

pub fn run(project: &Project) -> Result<StageReport> {
    let generator = project.generator()?;
    run_with(project, &generator)
}

fn run_with<G: Generator>(project: &Project, generator: &G) -> Result<StageReport> {
    let run_id = Project::run_id(generator);
    let stage_dir = project.stage_dir(&run_id, Stage::Generate);
    let key = generator.digest();
    if let Some(report) = stage_dir.finished(&key)? {
        return Ok(report);
    }
    project.record_run(&run_id, generator)?;
    let mut journal = stage_dir.journal::<Entry>(&key)?;
    let done: BTreeSet<String> = journal.entries().iter().map(|e| e.key.clone()).collect();
    let plan = generator.plan();
    let images = project.images();
    let context = GenerationContext {
        run_id: &run_id,
        taxonomy: &project.taxonomy,
        images: &images,
    };
    let progress = Progress::new("generate", plan.len(), project.interactive);
    progress.skip(done.len());
    for item in &plan {
        let item_key = generator.key(item);
        if done.contains(&item_key) {
            continue;
        }
        progress.before_item();
        let generated = generator.generate(item, &context)?;
        journal.append(Entry {
            key: item_key,
            generated,
        })?;
        progress.item_done();
    }
    progress.finish();

    let planned: BTreeSet<String> = plan.iter().map(|item| generator.key(item)).collect();
    let mut entries: Vec<Entry> = journal
        .into_entries()
        .into_iter()
        .filter(|e| planned.contains(&e.key))
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut rejections = Vec::new();
    for entry in entries {
        match entry.generated {
            Generated::Candidate(candidate) => {
                if candidates.contains_key(&candidate.id) {
                    rejections.push(Rejection {
                        key: entry.key,
                        reason: "generate:same-candidate".to_owned(),
                        detail: format!("produced candidate {} again", candidate.id),
                    });
                } else {
                    candidates.insert(candidate.id.clone(), *candidate);
                }
            }
            Generated::Rejected { reason, detail } => {
                rejections.push(Rejection {
                    key: entry.key,
                    reason,
                    detail,
                });
            }
        }
    }
    if project.interactive {
        for rejection in &rejections {
            eprintln!(
                "generate: no candidate from {}: {}",
                rejection.key, rejection.detail
            );
        }
    }
    atomic_file::write_jsonl(&stage_dir.output(CANDIDATES), candidates.values())?;
    atomic_file::write_jsonl(&stage_dir.output(REJECTIONS), &rejections)?;
    let reasons: Vec<Vec<String>> = rejections.iter().map(|r| vec![r.reason.clone()]).collect();
    let (rejected, by_reason) = count_reasons(reasons.iter().map(Vec::as_slice));
    let report = StageReport {
        stage: Stage::Generate,
        run_id: run_id.clone(),
        key: key.hex(),
        processed: plan.len() as u64,
        kept: candidates.len() as u64,
        rejected,
        rejections: by_reason,
        release: None,
        summary: format!(
            "{} candidates from {} work items ({} produced none)",
            candidates.len(),
            plan.len(),
            rejected
        ),
        reused: false,
    };
    stage_dir.finish(&report)?;
    Ok(report)
}

/// The run of the current inputs and its finished generate report, which
/// `stage` needs.
pub fn require(project: &Project, stage: Stage) -> Result<(String, StageReport)> {
    let generator = project.generator()?;
    let run_id = Project::run_id(&generator);
    let report = super::require(
        project,
        &run_id,
        Stage::Generate,
        &generator.digest(),
        stage,
    )?;
    Ok((run_id, report))
}
