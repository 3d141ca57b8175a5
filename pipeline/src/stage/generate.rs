//! Stage 1: ask the configured generator for candidates.
//!
//! Output: `generate/candidates.jsonl` (one record per distinct candidate,
//! sorted by id) and `generate/rejections.jsonl` (items that produced none).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use futures_util::{StreamExt, stream};

use super::{StageInput, StageReport, StageSpec, count_reasons};

use crate::atomic_file;
use crate::content_hash::Digest;
use crate::error::{Error, Result};
use crate::generator::{Generated, GenerationContext, Generator};
use crate::openai::Usage;
use crate::progress::Progress;
use crate::project::ConfiguredGenerator;
use crate::project::Project;
use crate::record::Candidate;

pub const STAGE: StageSpec = StageSpec {
    name: "generate",
    about: "Generate candidate image-text pairs with the configured generator",
    filters: false,
    key,
    run,
    vouches: None,
};

pub const CANDIDATES: &str = "candidates.jsonl";
pub const REJECTIONS: &str = "rejections.jsonl";

/// One finished work item in the journal, with everything it produced.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: String,
    outcomes: Vec<Generated>,
}

/// A work item that produced no candidate, and why.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rejection {
    pub key: String,
    pub reason: String,
    pub detail: String,
}

/// The generator's digest: every input that can change its output. The run
/// is named after it.
fn key(project: &Project, _: Option<&Digest>) -> Result<Digest> {
    Ok(project.generator()?.digest())
}

fn run(project: &Project, input: &StageInput) -> Result<StageReport> {
    match project.generator()? {
        ConfiguredGenerator::Seeded(generator) => run_with(project, input, generator.as_ref()),
        ConfiguredGenerator::OpenAi(generator) => run_with(project, input, generator.as_ref()),
    }
}

fn run_with<G: Generator>(
    project: &Project,
    input: &StageInput,
    generator: &G,
) -> Result<StageReport> {
    let runtime = crate::openai::client::runtime("the async runtime")?;
    runtime.block_on(run_async(project, input, generator))
}

async fn run_async<G: Generator>(
    project: &Project,
    input: &StageInput,
    generator: &G,
) -> Result<StageReport> {
    let (key, run_id, stage_dir) = (&input.key, &input.run_id, &input.dir);
    project.record_run(run_id, generator)?;
    let mut journal = stage_dir.journal::<Entry>(key)?;
    let done: BTreeSet<String> = journal.entries().iter().map(|e| e.key.clone()).collect();
    let plan = generator.plan();
    let images = project.images();
    let context = GenerationContext {
        run_id,
        taxonomy: &project.taxonomy,
        images: &images,
        stage_dir: &stage_dir.dir,
    };
    let session = generator.open_session(&context)?;
    let progress = Progress::new("generate", plan.len(), project.interactive);
    progress.skip(done.len());
    let pending = plan
        .iter()
        .filter(|item| !done.contains(&generator.key(item)));
    // Items run concurrently; each is journaled as soon as it finishes, in
    // whatever order, so a kill loses at most the items in flight.
    let mut results = stream::iter(pending)
        .map(|item| {
            let context = &context;
            let session = &session;
            let progress = &progress;
            async move {
                progress.before_item();
                (
                    generator.key(item),
                    generator.generate(session, item, context).await,
                )
            }
        })
        .buffer_unordered(generator.concurrency().max(1));
    let mut budget: Option<Error> = None;
    let mut failures: Vec<Error> = Vec::new();
    while let Some((item_key, result)) = results.next().await {
        match result {
            Ok(outcomes) => {
                journal.append(Entry {
                    key: item_key,
                    outcomes,
                })?;
                progress.item_done();
            }
            Err(error @ Error::Budget { .. }) => {
                budget.get_or_insert(error);
            }
            Err(error @ Error::Backend { .. }) => {
                if project.interactive {
                    progress.suspend(|| eprintln!("generate: {error}"));
                }
                failures.push(error);
            }
            Err(error) => return Err(error),
        }
    }
    drop(results);
    progress.finish();
    let unfinished = plan.len() - journal.entries().len().min(plan.len());
    if let Some(Error::Budget {
        run, spent, cap, ..
    }) = budget
    {
        return Err(Error::Budget {
            run,
            spent,
            cap,
            unfinished,
        });
    }
    if let Some(first) = failures.first() {
        return Err(Error::Incomplete {
            run: run_id.clone(),
            failed: failures.len(),
            first: first.to_string(),
        });
    }
    let usage = generator.usage(&session);
    finish(
        stage_dir,
        key,
        plan.iter().map(|item| generator.key(item)).collect(),
        journal.into_entries(),
        usage,
        project.interactive,
    )
}

fn finish(
    stage_dir: &super::StageDir,
    key: &Digest,
    planned: BTreeSet<String>,
    entries: Vec<Entry>,
    usage: Option<Usage>,
    interactive: bool,
) -> Result<StageReport> {
    let mut entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| planned.contains(&e.key))
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut rejections = Vec::new();
    for entry in entries {
        for generated in entry.outcomes {
            match generated {
                Generated::Candidate(candidate) => {
                    if candidates.contains_key(&candidate.id) {
                        rejections.push(Rejection {
                            key: entry.key.clone(),
                            reason: "generate:same-candidate".to_owned(),
                            detail: format!("produced candidate {} again", candidate.id),
                        });
                    } else {
                        candidates.insert(candidate.id.clone(), *candidate);
                    }
                }
                Generated::Rejected { reason, detail } => {
                    rejections.push(Rejection {
                        key: entry.key.clone(),
                        reason,
                        detail,
                    });
                }
            }
        }
    }
    if interactive {
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
        stage: STAGE.name.to_owned(),
        run_id: stage_dir.run_id.clone(),
        key: key.hex(),
        processed: planned.len() as u64,
        kept: candidates.len() as u64,
        rejected,
        rejections: by_reason,
        release: None,
        summary: format!(
            "{} candidates from {} work items ({} rejected outputs)",
            candidates.len(),
            planned.len(),
            rejected
        ),
        reused: false,
        usage,
    };
    stage_dir.finish(&report)?;
    Ok(report)
}
