//! What the review desk shows: the candidates of a run that a stage held
//! for review, a stable sample of kept ones for audit (`review.audit_sample`),
//! everything with `--all`, and whatever reviewers already decided, each
//! with every stage's record of it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use siuo_chain::project::Project;
use siuo_chain::stage::{self, VERDICTS};
use siuo_core::content_hash::ContentHasher;
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::record::{Candidate, Decision, DuplicateOf};
use siuo_core::release;
use siuo_core::review::ledger::{Ledger, UNREVIEWED, counts_text, verdict_counts};

/// One candidate on the desk.
#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    pub candidate: Candidate,
    /// Why it is queued: `held:<stage>`, `audit`, `revision`, `decided`, `all`.
    pub why: Vec<String>,
    /// Every filtering stage's record of it, in chain order.
    pub stages: Vec<StageRecord>,
    /// Candidates dedupe dropped as duplicates of this one.
    pub absorbed: Vec<Absorbed>,
    /// Where it was released, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<ReleasedAs>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub stage: &'static str,
    /// `keep`, `reject`, `review`, or `not-run` when the stage has no verdict.
    pub decision: &'static str,
    pub reasons: Vec<String>,
    /// The stage's whole verdict line (scores, votes, panel answers), kept
    /// as the JSON text it is on disk: a parsed tree of every record of
    /// 10,000 candidates would take ten times the memory.
    #[serde(serialize_with = "as_json")]
    pub record: String,
}

fn as_json<S: serde::Serializer>(
    record: &str,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match record.is_empty() {
        true => serializer.serialize_none(),
        false => serde_json::from_str::<serde_json::Value>(record)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer),
    }
}

/// What the queue reads of every verdict line besides its text.
#[derive(Deserialize)]
struct VerdictHead {
    candidate_id: String,
    #[serde(flatten)]
    decision: Decision,
    #[serde(default)]
    duplicate_of: Option<DuplicateOf>,
}

/// A finished stage's verdict lines by candidate id: the head and the line.
type VerdictLines = BTreeMap<String, (VerdictHead, String)>;

fn verdict_lines(path: &std::path::Path) -> Result<VerdictLines> {
    let text = input_file::read_text(path)?;
    let mut lines = BTreeMap::new();
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let head: VerdictHead = serde_json::from_str(line).map_err(|e| Error::Json {
            path: path.to_owned(),
            line: index + 1,
            source: e,
        })?;
        lines.insert(head.candidate_id.clone(), (head, line.to_owned()));
    }
    Ok(lines)
}

#[derive(Debug, Clone, Serialize)]
pub struct Absorbed {
    pub candidate_id: String,
    pub question: String,
    pub image: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleasedAs {
    pub version: String,
    pub question_id: u64,
}

/// The desk's queue of one run.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    pub run_id: String,
    pub items: Vec<QueueItem>,
}

/// Whether a kept candidate is in the audit sample: a hash of its id below
/// the share, so the sample is the same on every machine and grows with it.
pub fn in_audit_sample(candidate_id: &str, share: f64) -> bool {
    let digest = ContentHasher::new("siuo.review.audit.v1")
        .str(candidate_id)
        .finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.0[..8]);
    share >= 1.0 || (u64::from_le_bytes(first) as f64 / u64::MAX as f64) < share
}

impl Queue {
    /// The queue of `run_id` (`all`: every candidate of the run).
    pub fn build(project: &Project, run_id: &str, all: bool) -> Result<Queue> {
        let ledger = project.review_ledger()?;
        let decided: BTreeSet<String> = ledger
            .entries
            .iter()
            .map(|e| e.candidate_id.clone())
            .collect();
        let candidates = stage::candidates(project, run_id)?;
        let mut records: Vec<(&'static str, VerdictLines)> = Vec::new();
        let mut absorbed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for spec in stage::CHAIN.iter().filter(|s| s.filters) {
            let dir = project.stage_dir(run_id, spec.name);
            if dir.report()?.is_none() {
                continue;
            }
            let by_id = verdict_lines(&dir.output(VERDICTS))?;
            for (id, (head, _)) in &by_id {
                if let Some(DuplicateOf::Run { candidate_id }) = &head.duplicate_of {
                    absorbed
                        .entry(candidate_id.clone())
                        .or_default()
                        .push(id.clone());
                }
            }
            records.push((spec.name, by_id));
        }
        let released = released_as(&project.curated())?;
        let by_id: BTreeMap<&str, &Candidate> =
            candidates.iter().map(|c| (c.id.as_str(), c)).collect();
        let share = project.settings().review.audit_sample;
        let mut items = Vec::new();
        for candidate in &candidates {
            let mut why = Vec::new();
            let mut stages = Vec::new();
            let mut kept_by_all = true;
            for (name, by_id) in &mut records {
                let (decision, reasons, record) = match by_id.remove(&candidate.id) {
                    Some((head, line)) => {
                        let decision = match head.decision {
                            Decision::Keep => "keep",
                            Decision::Reject { .. } => "reject",
                            Decision::Review { .. } => "review",
                        };
                        (decision, head.decision.reasons().to_vec(), line)
                    }
                    None => ("not-run", Vec::new(), String::new()),
                };
                if decision == "review" {
                    why.push(format!("held:{name}"));
                }
                kept_by_all &= decision == "keep";
                stages.push(StageRecord {
                    stage: name,
                    decision,
                    reasons,
                    record,
                });
            }
            if candidate.revision_of.is_some() {
                why.push("revision".to_owned());
            }
            // Kept by every stage, or released (a later run's dedupe drops
            // a released case as a duplicate of its release).
            let kept = (kept_by_all && !records.is_empty()) || released.contains_key(&candidate.id);
            if kept && in_audit_sample(&candidate.id, share) {
                why.push("audit".to_owned());
            }
            if decided.contains(&candidate.id) {
                why.push("decided".to_owned());
            }
            if all && why.is_empty() {
                why.push("all".to_owned());
            }
            if why.is_empty() {
                continue;
            }
            items.push(QueueItem {
                absorbed: absorbed
                    .get(&candidate.id)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| by_id.get(id.as_str()))
                    .map(|c| Absorbed {
                        candidate_id: c.id.clone(),
                        question: c.question.clone(),
                        image: c.image.path.clone(),
                    })
                    .collect(),
                released: released.get(&candidate.id).cloned(),
                candidate: candidate.clone(),
                why,
                stages,
            });
        }
        items.sort_by(|a, b| {
            let order = |c: &Candidate| project.taxonomy.order(&c.domain, &c.subcategory);
            order(&a.candidate)
                .cmp(&order(&b.candidate))
                .then_with(|| a.candidate.id.cmp(&b.candidate.id))
        });
        Ok(Queue {
            run_id: run_id.to_owned(),
            items,
        })
    }
}

/// Candidate id → where the latest release in `curated` has it.
pub fn released_as(curated: &std::path::Path) -> Result<BTreeMap<String, ReleasedAs>> {
    let mut map = BTreeMap::new();
    if let Some(latest) = release::list(curated)?.pop() {
        let mut cases = latest.cases()?;
        cases.extend(latest.controls()?);
        for case in cases {
            map.insert(
                case.candidate_id.clone(),
                ReleasedAs {
                    version: latest.name(),
                    question_id: case.question_id,
                },
            );
        }
    }
    Ok(map)
}

/// Review progress of a queue under a ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub queued: usize,
    /// Queued candidates with a decision (or made by one: a revision).
    pub reviewed: usize,
    /// Queued candidates by verdict (`approved`, `rejected`, `conflict`, `revised`).
    pub verdicts: BTreeMap<&'static str, usize>,
}

impl Progress {
    pub fn of(items: &[QueueItem], ledger: &Ledger) -> Progress {
        let mut verdicts = verdict_counts(ledger, items.iter().map(|i| i.candidate.id.as_str()));
        // An edit's revision counts as reviewed: its editor approved it.
        let unreviewed = verdicts.remove(UNREVIEWED).unwrap_or(0);
        Progress {
            queued: items.len(),
            reviewed: items.len() - unreviewed,
            verdicts,
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{} of {} reviewed{}",
            self.reviewed,
            self.queued,
            match self.verdicts.is_empty() {
                true => String::new(),
                false => format!(" ({})", counts_text(&self.verdicts)),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_sample_takes_about_its_share_and_is_stable() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("c{i:016x}")).collect();
        let picked = ids.iter().filter(|id| in_audit_sample(id, 0.1)).count();
        assert!((900..=1100).contains(&picked), "{picked} of 10000");
        assert!(ids.iter().all(|id| in_audit_sample(id, 1.0)));
        assert!(!ids.iter().any(|id| in_audit_sample(id, 0.0)));
        // A larger share keeps every case a smaller one picked.
        assert!(
            ids.iter()
                .filter(|id| in_audit_sample(id, 0.1))
                .all(|id| in_audit_sample(id, 0.2))
        );
    }
}
