//! The stage chain, and what its stages share.
//!
//! The chain is data: [`CHAIN`] lists each stage with its key function and
//! its run function, each stage reading the finished output of the row
//! before it, and [`run`] is the only code that knows the order. A stage reads what came before it through [`survivors`] and
//! [`records`], never through another stage's functions, so adding a stage
//! is one row, its module, its config section and its record type.
//!
//! Each stage of a run lives in `raw/runs/<run>/<stage>/`. A stage is done
//! when its `report.json` exists with the key of its current inputs; until
//! then its journal holds the items already finished. A stage whose inputs
//! changed (another key) starts over; one whose key matches does no work.
//!
//! People's decisions (`curated/reviews.jsonl`, see [`crate::review`])
//! apply to every stage here, in [`candidates`] (an edit adds a revision)
//! and [`survivors`] (an approval lets a held candidate pass; a rejection
//! passes none), and their digest is part of every key after the first.

pub mod check;
pub mod dedupe;
pub mod difficulty;
pub mod export;
pub mod generate;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::atomic_file;
use crate::content_hash::{ContentHasher, Digest};
use crate::error::{Error, Result};
use crate::input_file;
use crate::journal::VerdictJournal;
use crate::progress::Progress;
use crate::project::Project;
use crate::record::{Candidate, CandidateVerdict, Decision};
use crate::release::Vouch;
use crate::review::{Ledger, Verdict};
pub use crate::stage_dir::{StageDir, StageReport};

/// One stage of the chain.
pub struct StageSpec {
    /// Its name: the command (`siuo <name>`) and its folder in a run.
    pub name: &'static str,
    /// One line for `siuo --help`.
    pub about: &'static str,
    /// Whether it writes a verdict with a decision per candidate
    /// ([`VERDICTS`]); only kept candidates reach the stages after it.
    pub filters: bool,
    /// Digest of everything the stage's output depends on, given the key
    /// of the row before it (`None` for the first stage, which names the run).
    pub key: fn(&Project, Option<&Digest>) -> Result<Digest>,
    /// Does the work; [`run`] has checked that the upstream is done and
    /// that this stage is not.
    pub run: fn(&Project, &StageInput) -> Result<StageReport>,
    /// For a stage that vouches for cases: what the release records of each
    /// candidate of a run it kept, by candidate id.
    pub vouches: Option<Vouches>,
    /// Whether its items are independent, so that `--shard I/N` may split
    /// them over processes (see [`crate::shard`]); a stage that compares
    /// items with each other (dedupe) or writes one release (export) is not.
    pub shardable: bool,
}

/// A vouching stage's record of a run's kept candidates: calls the
/// callback with each candidate id and its vouch, one at a time.
pub type Vouches = fn(&Project, &str, &mut dyn FnMut(String, Vouch) -> Result<()>) -> Result<()>;

/// What [`run`] hands a stage.
pub struct StageInput {
    pub run_id: String,
    /// The stage's key, from [`StageSpec::key`].
    pub key: Digest,
    /// The finished upstream; `None` for the first stage.
    pub upstream: Option<Upstream>,
    pub dir: StageDir,
}

/// A stage's finished upstream.
pub struct Upstream {
    pub name: &'static str,
    /// The key this stage's key was computed from.
    pub key: Digest,
    pub report: StageReport,
}

impl StageInput {
    /// The candidates every filtering stage up to the upstream kept: what
    /// this stage works on.
    pub fn survivors(&self, project: &Project) -> Result<Vec<Candidate>> {
        let upto = self.upstream.as_ref().map_or("", |u| u.name);
        survivors(project, &self.run_id, upto)
    }
}

/// The stages in the order `siuo run` runs them.
pub const CHAIN: &[StageSpec] = &[
    generate::STAGE,
    check::STAGE,
    dedupe::STAGE,
    verify::STAGE,
    difficulty::STAGE,
    export::STAGE,
];

/// The stage named `name`.
pub fn find(name: &str) -> Option<&'static StageSpec> {
    CHAIN.iter().find(|s| s.name == name)
}

/// Names of every stage, in chain order.
pub fn names() -> impl Iterator<Item = &'static str> {
    CHAIN.iter().map(|s| s.name)
}

/// Where a stage sits in the chain; a name not in [`CHAIN`] is past its end.
fn position(name: &str) -> usize {
    CHAIN
        .iter()
        .position(|s| s.name == name)
        .unwrap_or(CHAIN.len())
}

/// The run id of the current inputs and the keys of the chain up to and
/// including `name`, in chain order: each stage's own key, and the key its
/// successor's key is computed from. The review ledger applies from the
/// first stage on, so its digest enters there: a decision re-keys every
/// stage after the first, none of them by an edit of its own.
fn keys_up_to(project: &Project, name: &str) -> Result<(String, Vec<ChainKey>)> {
    let review = review_digest(project)?;
    let mut keys: Vec<ChainKey> = Vec::new();
    for spec in CHAIN.iter().take(position(name) + 1) {
        let upstream = keys.last().map(|k| k.handed);
        let own = (spec.key)(project, upstream.as_ref())?;
        let handed = match keys.is_empty() {
            true => ContentHasher::new("siuo.stage.reviewed.v1")
                .str(&own.hex())
                .str(&review.hex())
                .finish(),
            false => own,
        };
        keys.push(ChainKey { own, handed });
    }
    let run_id = keys
        .first()
        .map(|k| Project::run_id(&k.own))
        .unwrap_or_default();
    Ok((run_id, keys))
}

/// The run of the current inputs.
pub fn current_run(project: &Project) -> Result<String> {
    keys_up_to(project, CHAIN[0].name).map(|(run_id, _)| run_id)
}

#[derive(Clone, Copy)]
struct ChainKey {
    /// The stage is done when its report has this key.
    own: Digest,
    /// What the next stage's key is computed from.
    handed: Digest,
}

/// What the chain's output depends on in the review ledger and config.
fn review_digest(project: &Project) -> Result<Digest> {
    Ok(ContentHasher::new("siuo.review.v1")
        .str(&project.review_ledger()?.digest().hex())
        .u64(u64::from(project.settings().review.required))
        .finish())
}

/// Runs one stage of the chain on the run of the current inputs: an error
/// if its upstream has not finished with its current key, the stored report
/// if the stage already finished with its own.
pub fn run(project: &Project, spec: &StageSpec) -> Result<StageReport> {
    let (run_id, keys) = keys_up_to(project, spec.name)?;
    let at = position(spec.name);
    let key = keys[at].own;
    let upstream = match at
        .checked_sub(1)
        .map(|before| (&CHAIN[before], keys[before]))
    {
        None => None,
        Some((needs, keys)) => {
            let needs = needs.name;
            let report = project
                .stage_dir(&run_id, needs)
                .finished(&keys.own)?
                .ok_or_else(|| Error::StageNotReady {
                    stage: spec.name,
                    needs,
                    run: run_id.clone(),
                })?;
            Some(Upstream {
                name: needs,
                key: keys.handed,
                report,
            })
        }
    };
    let dir = project.stage_dir(&run_id, spec.name);
    if let Some(report) = dir.finished(&key)? {
        return Ok(report);
    }
    (spec.run)(
        project,
        &StageInput {
            run_id,
            key,
            upstream,
            dir,
        },
    )
}

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
    let ledger_path = crate::review::ledger::ledger_path(&project.curated());
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

/// The candidates of a run that every filtering stage up to and including
/// `stage` kept, sorted by id. A candidate without a verdict of such a stage
/// did not survive it: nothing passes by default. The review ledger
/// applies throughout: a candidate a stage held for review passes it when
/// reviewers approved it, and one they rejected, disagree on or revised
/// passes no stage.
pub fn survivors(project: &Project, run_id: &str, stage: &str) -> Result<Vec<Candidate>> {
    let ledger = project.review_ledger()?;
    let reviewed = ledger.verdicts();
    let approved = |id: &str| reviewed.get(id).is_some_and(Verdict::passes);
    let mut candidates = reviewed_candidates(project, run_id, ledger)?;
    candidates.retain(|c| reviewed.get(&c.id).is_none_or(Verdict::passes));
    for spec in CHAIN.iter().take(position(stage) + 1).filter(|s| s.filters) {
        let kept: BTreeSet<String> = records::<DecisionLine>(project, run_id, spec.name, VERDICTS)?
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
/// of this process's shard (see [`crate::shard`]); the journaled ones, and
/// other shards' items, count as done on `progress`.
pub fn pending<'a>(
    candidates: &'a [Candidate],
    done: impl Fn(&str) -> bool,
    progress: &Progress,
) -> Vec<&'a Candidate> {
    let pending: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !done(&c.id) && crate::shard::owns(&c.id))
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
    match crate::shard::current() {
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
    match crate::shard::current() {
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
        let summary = match crate::shard::current() {
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

/// Counts reasons of rejected items for a report.
pub fn count_reasons<'a>(
    reasons: impl IntoIterator<Item = &'a [String]>,
) -> (u64, BTreeMap<String, u64>) {
    let mut rejected = 0;
    let mut by_reason = BTreeMap::new();
    for item_reasons in reasons {
        if item_reasons.is_empty() {
            continue;
        }
        rejected += 1;
        for reason in item_reasons {
            *by_reason.entry(reason.clone()).or_insert(0) += 1;
        }
    }
    (rejected, by_reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_are_unique() {
        let mut seen = BTreeSet::new();
        for (index, spec) in CHAIN.iter().enumerate() {
            assert!(seen.insert(spec.name), "{} twice", spec.name);
            assert_eq!(position(spec.name), index);
        }
    }
}
