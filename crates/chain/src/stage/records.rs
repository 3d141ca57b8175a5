//! What the stages share: reading a finished stage's records, the run's
//! candidates with the reviewers' decisions applied, the survivors of the
//! filtering stages, the items still to do, and writing a verdict stage's
//! output and report.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::project::Project;
use siuo_core::atomic_file;
use siuo_core::content_hash::Digest;
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::journal::VerdictJournal;
use siuo_core::progress::Progress;
use siuo_core::record::{Candidate, CandidateVerdict, Decision};
use siuo_core::review::{Ledger, Verdict};
use siuo_core::shard::Shard;
use siuo_core::stage_dir::{StageDir, StageReport};

use super::generate;
use super::spec::StageInput;

/// The typed records a finished stage of a run wrote to `file`.
pub fn records<T: DeserializeOwned>(
    project: &Project,
    run_id: &str,
    stage: &'static str,
    file: &str,
) -> Result<Vec<T>> {
    input_file::read_jsonl(&project.stage_dir(run_id, stage).output(file))
}

/// Calls `each` with the typed records a finished stage of a run wrote to
/// `file`, one at a time: a stage's verdicts at 100k candidates are
/// hundreds of MB.
pub fn for_each_record<T: DeserializeOwned>(
    project: &Project,
    run_id: &str,
    stage: &'static str,
    file: &str,
    each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    input_file::for_each_jsonl(&project.stage_dir(run_id, stage).output(file), each)
}

/// The first stage's candidates and the reviewers' revisions of them
/// (see [`Ledger::revise`]), every label checked against the taxonomy.
pub fn candidates(project: &Project, run_id: &str) -> Result<Vec<Candidate>> {
    reviewed_candidates(project, run_id, project.review_ledger()?)
}

fn reviewed_candidates(project: &Project, run_id: &str, ledger: &Ledger) -> Result<Vec<Candidate>> {
    let path = project
        .stage_dir(run_id, generate::STAGE.name)
        .output(generate::CANDIDATES);
    let generated: Vec<Candidate> = input_file::read_jsonl(&path)?;
    let ledger_path = siuo_core::review::ledger::ledger_path(&project.curated());
    // The ledger was read before this run may have existed on this machine.
    let ids = generated.iter().map(|c| c.id.clone()).collect();
    ledger.check_run(&ledger_path, run_id, &ids)?;
    let candidates = ledger.revise(generated);
    for (index, candidate) in candidates.iter().enumerate() {
        let (path, record) = match &candidate.revision_of {
            None => (
                &path,
                format!("line {} (candidate {})", index + 1, candidate.id),
            ),
            Some(of) => (&ledger_path, format!("the edit of candidate {of}")),
        };
        project
            .taxonomy
            .resolve(path, &record, &candidate.domain, &candidate.subcategory)?;
    }
    Ok(candidates)
}

/// Just the decision of any stage's verdict line.
#[derive(Deserialize)]
struct DecisionLine {
    candidate_id: String,
    #[serde(flatten)]
    decision: Decision,
}

impl StageInput {
    /// The candidates every filtering stage before this one kept: what
    /// this stage works on.
    pub fn survivors(&self, project: &Project) -> Result<Vec<Candidate>> {
        survivors(project, &self.run_id, self.filters())
    }
}

/// The candidates of a run that every stage of `filters` (filtering
/// stages, by name) kept, sorted by id. A candidate without a verdict of such a stage
/// did not survive it: nothing passes by default. The review ledger
/// applies throughout: a candidate a stage held for review passes it when
/// reviewers approved it, and one they rejected, disagree on or revised
/// passes no stage.
pub fn survivors(
    project: &Project,
    run_id: &str,
    filters: impl IntoIterator<Item = &'static str>,
) -> Result<Vec<Candidate>> {
    let ledger = project.review_ledger()?;
    let reviewed = ledger.verdicts();
    let approved = |id: &str| reviewed.get(id).is_some_and(Verdict::passes);
    let mut candidates = reviewed_candidates(project, run_id, ledger)?;
    candidates.retain(|c| reviewed.get(&c.id).is_none_or(Verdict::passes));
    for stage in filters {
        let kept: BTreeSet<String> = records::<DecisionLine>(project, run_id, stage, VERDICTS)?
            .into_iter()
            .filter(|v| match v.decision {
                Decision::Keep => true,
                Decision::Review { .. } => approved(&v.candidate_id),
                Decision::Reject { .. } => false,
            })
            .map(|v| v.candidate_id)
            .collect();
        candidates.retain(|c| kept.contains(&c.id));
    }
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(candidates)
}

/// The candidates a stage's journal holds no verdict for yet, in order,
/// of `shard` (see [`siuo_core::shard`]); the journaled ones, and other shards'
/// items, count as done on `progress`.
pub fn pending<'a>(
    candidates: &'a [Candidate],
    done: impl Fn(&str) -> bool,
    shard: Option<Shard>,
    progress: &Progress,
) -> Vec<&'a Candidate> {
    let pending: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !done(&c.id) && shard.is_none_or(|s| s.contains(&c.id)))
        .collect();
    progress.skip(candidates.len() - pending.len());
    pending
}

/// File of a stage that writes one verdict per candidate.
pub const VERDICTS: &str = "verdicts.jsonl";

/// Ends a stage that writes one verdict per candidate from verdicts in
/// memory: keeps those of the current `candidates` (the first of each
/// candidate's), writes them sorted by candidate id, then the report.
/// `summary` gets (kept, processed). A shard writes nothing: its report
/// only counts its own.
pub fn finish_with_verdicts<V: CandidateVerdict + Serialize>(
    stage_dir: &StageDir,
    key: &Digest,
    journaled: Vec<V>,
    candidates: &BTreeSet<&str>,
    summary: impl FnOnce(u64, u64) -> String,
) -> Result<StageReport> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut verdicts: Vec<V> = journaled
        .into_iter()
        .filter(|v| candidates.contains(v.candidate_id()))
        .filter(|v| seen.insert(v.candidate_id().to_owned()))
        .collect();
    verdicts.sort_by(|a, b| a.candidate_id().cmp(b.candidate_id()));
    let mut counts = VerdictCounts::default();
    match stage_dir.shard {
        Some(shard) => (verdicts.iter())
            .filter(|v| shard.contains(v.candidate_id()))
            .for_each(|v| counts.add(v)),
        None => {
            verdicts.iter().for_each(|v| counts.add(v));
            atomic_file::write_jsonl(&stage_dir.output(VERDICTS), &verdicts)?;
        }
    }
    counts.finish(stage_dir, key, summary)
}

/// [`finish_with_verdicts`] for a stage whose verdicts are in its journal:
/// they are streamed from it to `verdicts.jsonl` in candidate order, one
/// at a time, so a stage's memory does not grow with its verdicts.
pub fn finish_journaled<V: CandidateVerdict + Serialize + DeserializeOwned>(
    stage_dir: &StageDir,
    key: &Digest,
    journal: &VerdictJournal<V>,
    candidates: &BTreeSet<&str>,
    summary: impl FnOnce(u64, u64) -> String,
) -> Result<StageReport> {
    let mut counts = VerdictCounts::default();
    match stage_dir.shard {
        Some(shard) => journal.for_each_in_order(candidates, |v| {
            if shard.contains(v.candidate_id()) {
                counts.add(&v);
            }
            Ok(())
        })?,
        None => {
            let path = stage_dir.output(VERDICTS);
            atomic_file::write_with(&path, |out| {
                journal.for_each_in_order(candidates, |v| {
                    counts.add(&v);
                    serde_json::to_writer(&mut *out, &v).map_err(|e| Error::Json {
                        path: path.clone(),
                        line: counts.processed as usize,
                        source: e,
                    })?;
                    out.write_all(b"\n").map_err(|e| Error::io(&path, e))
                })
            })?;
        }
    }
    counts.finish(stage_dir, key, summary)
}

/// What a verdict stage's report counts.
#[derive(Default)]
struct VerdictCounts {
    processed: u64,
    rejected: u64,
    held: u64,
    rejections: BTreeMap<String, u64>,
}

impl VerdictCounts {
    fn add(&mut self, verdict: &impl CandidateVerdict) {
        self.processed += 1;
        let reasons = verdict.decision().reasons();
        if !reasons.is_empty() {
            self.rejected += 1;
        }
        for reason in reasons {
            *self.rejections.entry(reason.clone()).or_insert(0) += 1;
        }
        self.held += u64::from(matches!(verdict.decision(), Decision::Review { .. }));
    }

    /// The stage's report, recorded (unless this process is a shard).
    fn finish(
        self,
        stage_dir: &StageDir,
        key: &Digest,
        summary: impl FnOnce(u64, u64) -> String,
    ) -> Result<StageReport> {
        let kept = self.processed - self.rejected;
        let summary = match stage_dir.shard {
            Some(shard) => format!(
                "shard {shard}: {}; `siuo merge` (or the next stage unsharded) combines the shards",
                summary(kept, self.processed)
            ),
            None => summary(kept, self.processed),
        };
        let report = StageReport {
            stage: stage_dir.stage.to_owned(),
            run_id: stage_dir.run_id.clone(),
            key: key.hex(),
            processed: self.processed,
            kept,
            rejected: self.rejected,
            rejections: self.rejections,
            release: None,
            summary,
            reused: false,
            held: Some(self.held),
            usage: None,
        };
        stage_dir.finish(&report)?;
        Ok(report)
    }
}
