//! What the review desk shows: the candidates of a run that a stage held
//! for review, a stable sample of kept ones for audit (`review.audit_sample`),
//! everything with `--all`, and whatever reviewers already decided, each
//! with every stage's record of it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ledger::{Ledger, Verdict};
use crate::content_hash::ContentHasher;
use crate::error::Result;
use crate::project::Project;
use crate::record::{Candidate, DedupeVerdict, DuplicateOf};
use crate::release;
use crate::stage::{self, VERDICTS};

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
    pub decision: String,
    pub reasons: Vec<String>,
    /// The stage's whole verdict line (scores, votes, panel answers).
    pub record: serde_json::Value,
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
    (u64::from_le_bytes(first) as f64 / u64::MAX as f64) < share
}

impl Queue {
    /// The queue of `run_id` (`all`: every candidate of the run).
    pub fn build(project: &Project, run_id: &str, all: bool) -> Result<Queue> {
        let ledger = Ledger::read(&project.curated())?;
        let decided: BTreeSet<String> = ledger
            .entries
            .iter()
            .map(|e| e.candidate_id.clone())
            .collect();
        let candidates = stage::candidates(project, run_id)?;
        let mut records: Vec<(&'static str, BTreeMap<String, serde_json::Value>)> = Vec::new();
        let mut absorbed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for spec in stage::CHAIN.iter().filter(|s| s.filters) {
            let dir = project.stage_dir(run_id, spec.name);
            if dir.report()?.is_none() {
                continue;
            }
            let lines: Vec<serde_json::Value> =
                stage::records(project, run_id, spec.name, VERDICTS)?;
            let by_id = lines
                .into_iter()
                .filter_map(|v| Some((v["candidate_id"].as_str()?.to_owned(), v)))
                .collect::<BTreeMap<_, _>>();
            if spec.name == stage::dedupe::STAGE.name {
                for line in by_id.values() {
                    let Ok(verdict) = serde_json::from_value::<DedupeVerdict>(line.clone()) else {
                        continue;
                    };
                    if let Some(DuplicateOf::Run { candidate_id }) = verdict.duplicate_of {
                        absorbed
                            .entry(candidate_id)
                            .or_default()
                            .push(verdict.candidate_id);
                    }
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
            for (name, by_id) in &records {
                let (decision, reasons, record) = match by_id.get(&candidate.id) {
                    Some(line) => (
                        line["decision"].as_str().unwrap_or("keep").to_owned(),
                        line["reasons"]
                            .as_array()
                            .map(|r| {
                                r.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        line.clone(),
                    ),
                    None => ("not-run".to_owned(), Vec::new(), serde_json::Value::Null),
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
            if kept_by_all && !records.is_empty() && in_audit_sample(&candidate.id, share) {
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
    pub verdicts: BTreeMap<String, usize>,
}

impl Progress {
    pub fn of(items: &[QueueItem], ledger: &Ledger) -> Progress {
        let verdicts = ledger.verdicts();
        let mut by_verdict: BTreeMap<String, usize> = BTreeMap::new();
        for item in items {
            if let Some(v) = verdicts.get(&item.candidate.id) {
                *by_verdict.entry(v.name().to_owned()).or_default() += 1;
            }
        }
        Progress {
            queued: items.len(),
            // An edit's revision counts as reviewed: its editor approved it.
            reviewed: items
                .iter()
                .filter(|i| verdicts.contains_key(&i.candidate.id))
                .count(),
            verdicts: by_verdict,
        }
    }

    pub fn summary(&self) -> String {
        let verdicts: Vec<String> = self
            .verdicts
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        format!(
            "{} of {} reviewed{}",
            self.reviewed,
            self.queued,
            match verdicts.is_empty() {
                true => String::new(),
                false => format!(" ({})", verdicts.join(", ")),
            }
        )
    }
}

/// A verdict name for filters: `unreviewed` when nobody decided.
pub fn verdict_name(verdict: Option<&Verdict>) -> &'static str {
    verdict.map_or("unreviewed", Verdict::name)
}
