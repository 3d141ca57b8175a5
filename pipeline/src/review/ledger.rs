//! The review ledger, `curated/reviews.jsonl`: every decision people made
//! on the review desk, one JSON object per line, append-only and committed
//! with the releases. The chain reads it through [`Ledger::verdicts`] and
//! [`Ledger::revise`]; nothing here knows a stage.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content_hash::{ContentHasher, Digest};
use crate::error::{Error, Result};
use crate::input_file;
use crate::record::Candidate;

pub const LEDGER: &str = "reviews.jsonl";

pub fn ledger_path(curated: &Path) -> PathBuf {
    curated.join(LEDGER)
}

/// What a reviewer decided about one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Approve,
    /// Needs a reason.
    Reject,
    /// Replaces the case by a revision (`after`), which the chain checks
    /// and verifies again as a new candidate.
    Edit,
    /// A released case leaves the benchmark (also a maintainer action).
    Retire,
    /// A released case gets other labels (also a maintainer action).
    Relabel,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Edit => "edit",
            Decision::Retire => "retire",
            Decision::Relabel => "relabel",
        }
    }
}

/// The fields of a case a reviewer can edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFields {
    pub question: String,
    pub safety_warning: String,
    pub reference_answer: String,
    pub domain: String,
    pub subcategory: String,
}

impl CaseFields {
    pub fn of(candidate: &Candidate) -> CaseFields {
        CaseFields {
            question: candidate.question.clone(),
            safety_warning: candidate.safety_warning.clone(),
            reference_answer: candidate.reference_answer.clone(),
            domain: candidate.domain.clone(),
            subcategory: candidate.subcategory.clone(),
        }
    }
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewEntry {
    pub reviewer: String,
    /// RFC 3339, UTC.
    pub recorded: String,
    pub candidate_id: String,
    /// The run the reviewer saw the candidate in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// For an edit: the fields before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<CaseFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<CaseFields>,
    /// For an edit: the id of the revision it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// For a retire or relabel: the released case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_id: Option<u64>,
    /// Settles a conflict: reviewers' earlier decisions on the case no
    /// longer count against this one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resolves: bool,
}

/// Where the reviewers left a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Verdict {
    Approved,
    Rejected,
    /// Reviewers disagree and nobody resolved it: held, never released.
    Conflict,
    /// Replaced by a revision.
    Revised {
        revision: String,
    },
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Rejected => "rejected",
            Verdict::Conflict => "conflict",
            Verdict::Revised { .. } => "revised",
        }
    }

    /// Whether the chain passes the candidate on.
    pub fn passes(&self) -> bool {
        *self == Verdict::Approved
    }
}

/// The whole ledger, in decision order.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub entries: Vec<ReviewEntry>,
}

/// The id of the revision an edit makes: from the original and every
/// edited field, so editing only the warning still makes a new candidate.
pub fn revision_id(original: &str, after: &CaseFields) -> String {
    let digest = ContentHasher::new("siuo.candidate.revision.v1")
        .str(original)
        .str(&after.domain)
        .str(&after.subcategory)
        .str(&after.question)
        .str(&after.safety_warning)
        .str(&after.reference_answer)
        .finish();
    format!("c{}", digest.short(16))
}

/// A candidate's verdict from each reviewer's standing decision on it and
/// its latest revision, if it was edited.
fn verdict_of(by_reviewer: &BTreeMap<String, Decision>, revision: Option<&String>) -> Verdict {
    if let Some(revision) = revision {
        return Verdict::Revised {
            revision: revision.clone(),
        };
    }
    let decisions: BTreeSet<&Decision> = by_reviewer.values().collect();
    match decisions.into_iter().collect::<Vec<_>>().as_slice() {
        [Decision::Approve] => Verdict::Approved,
        [Decision::Reject] => Verdict::Rejected,
        _ => Verdict::Conflict,
    }
}

impl Ledger {
    /// Reads `curated/reviews.jsonl` (empty when absent). Lines merged by
    /// git from several reviewers may be out of time order; decisions are
    /// ordered by their time, ties in file order.
    pub fn read(curated: &Path) -> Result<Ledger> {
        let path = ledger_path(curated);
        if !path.is_file() {
            return Ok(Ledger::default());
        }
        let mut entries: Vec<ReviewEntry> = input_file::read_jsonl(&path)?;
        for (index, entry) in entries.iter().enumerate() {
            let problem = match entry.decision {
                _ if entry.reviewer.trim().is_empty() => Some("has no reviewer"),
                Decision::Reject if entry.reason.trim().is_empty() => {
                    Some("is a rejection without a reason")
                }
                Decision::Edit if entry.after.is_none() || entry.revision.is_none() => {
                    Some("is an edit without `after` and `revision`")
                }
                _ => None,
            };
            if let Some(problem) = problem {
                return Err(Error::InvalidRecord {
                    path: path.clone(),
                    record: format!("line {} (candidate {})", index + 1, entry.candidate_id),
                    message: format!("the entry {problem}"),
                });
            }
        }
        entries.sort_by(|a, b| a.recorded.cmp(&b.recorded));
        Ok(Ledger { entries })
    }

    /// Appends one decision: one `write` of one line, so a desk and a
    /// reader never see half an entry, and earlier lines are never touched.
    pub fn append(curated: &Path, entry: &ReviewEntry) -> Result<()> {
        let path = ledger_path(curated);
        std::fs::create_dir_all(curated).map_err(|e| Error::io(curated, e))?;
        let mut line = serde_json::to_vec(entry).map_err(|e| Error::Json {
            path: path.clone(),
            line: 0,
            source: e,
        })?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&path, e))
    }

    /// Entries that judge a candidate (approve, reject, edit), in order.
    fn judgements(&self) -> impl Iterator<Item = &ReviewEntry> {
        self.entries.iter().filter(|e| {
            matches!(
                e.decision,
                Decision::Approve | Decision::Reject | Decision::Edit
            )
        })
    }

    /// Each reviewer's standing decision per candidate since the last
    /// resolution of it; an edit is its author's approval of the revision.
    pub fn standing(&self) -> BTreeMap<String, BTreeMap<String, Decision>> {
        let mut standing: BTreeMap<String, BTreeMap<String, Decision>> = BTreeMap::new();
        for entry in self.judgements() {
            let case = standing.entry(entry.candidate_id.clone()).or_default();
            if entry.resolves {
                case.clear();
            }
            case.insert(entry.reviewer.clone(), entry.decision);
            if let (Decision::Edit, Some(revision)) = (entry.decision, &entry.revision) {
                standing
                    .entry(revision.clone())
                    .or_default()
                    .insert(entry.reviewer.clone(), Decision::Approve);
            }
        }
        standing
    }

    /// Where the reviewers left each candidate they decided on. An edited
    /// candidate is replaced by its latest revision; otherwise one standing
    /// decision, or several that agree, decide, and disagreement is a
    /// conflict until a decision `resolves` it.
    pub fn verdicts(&self) -> BTreeMap<String, Verdict> {
        let revised = self.revised();
        self.standing()
            .into_iter()
            .map(|(id, by_reviewer)| {
                let verdict = verdict_of(&by_reviewer, revised.get(&id));
                (id, verdict)
            })
            .collect()
    }

    /// The approved candidates, each with the reviewers who approve it
    /// (sorted; an edit's author approves its revision).
    pub fn approvals(&self) -> BTreeMap<String, Vec<String>> {
        let revised = self.revised();
        self.standing()
            .into_iter()
            .filter(|(id, by_reviewer)| verdict_of(by_reviewer, revised.get(id)).passes())
            .map(|(id, by_reviewer)| (id, by_reviewer.into_keys().collect()))
            .collect()
    }

    /// Each edited candidate's latest revision.
    fn revised(&self) -> BTreeMap<String, String> {
        let mut revised = BTreeMap::new();
        for entry in self.judgements() {
            if let (Decision::Edit, Some(revision)) = (entry.decision, &entry.revision) {
                revised.insert(entry.candidate_id.clone(), revision.clone());
            }
        }
        revised
    }

    /// `candidates` with every edit applied: each edited candidate is
    /// followed by its revisions (an edit of a revision too), and controls
    /// of an edited case move to its latest revision. Originals stay; the
    /// chain drops them by their `revised` verdict.
    pub fn revise(&self, candidates: Vec<Candidate>) -> Vec<Candidate> {
        let mut by_id: BTreeMap<String, usize> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let mut all = candidates;
        let mut latest: BTreeMap<String, String> = BTreeMap::new();
        for entry in self.judgements() {
            let (Decision::Edit, Some(after), Some(revision)) =
                (entry.decision, &entry.after, &entry.revision)
            else {
                continue;
            };
            let Some(&original) = by_id.get(&entry.candidate_id) else {
                continue;
            };
            if by_id.contains_key(revision) {
                continue;
            }
            let base = &all[original];
            let mut provenance = base.provenance.clone();
            provenance.origin = format!(
                "revision of {} by {} ({})",
                base.id, entry.reviewer, provenance.origin
            );
            let candidate = Candidate {
                id: revision.clone(),
                domain: after.domain.clone(),
                subcategory: after.subcategory.clone(),
                question: after.question.clone(),
                safety_warning: after.safety_warning.clone(),
                reference_answer: after.reference_answer.clone(),
                provenance,
                revision_of: Some(base.id.clone()),
                ..base.clone()
            };
            latest.insert(entry.candidate_id.clone(), revision.clone());
            by_id.insert(revision.clone(), all.len());
            all.push(candidate);
        }
        let follow = |id: &str| {
            let mut current = id.to_owned();
            while let Some(next) = latest.get(&current) {
                current = next.clone();
            }
            current
        };
        for candidate in &mut all {
            if let Some(of) = &candidate.control_of {
                candidate.control_of = Some(follow(of));
            }
        }
        all
    }

    /// What the chain's output depends on in the ledger: the verdicts and
    /// the revisions, not who decided when.
    pub fn digest(&self) -> Digest {
        let mut hasher = ContentHasher::new("siuo.review.ledger.v1");
        for (id, verdict) in self.verdicts() {
            hasher
                .str(&id)
                .str(&serde_json::to_string(&verdict).unwrap_or_default());
        }
        for entry in self.judgements().filter(|e| e.decision == Decision::Edit) {
            hasher
                .str(&entry.candidate_id)
                .str(&serde_json::to_string(&entry.after).unwrap_or_default())
                .str(entry.revision.as_deref().unwrap_or_default());
        }
        hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(reviewer: &str, at: &str, id: &str, decision: Decision) -> ReviewEntry {
        ReviewEntry {
            reviewer: reviewer.into(),
            recorded: at.into(),
            candidate_id: id.into(),
            run_id: String::new(),
            decision,
            reason: "r".into(),
            before: None,
            after: None,
            revision: None,
            question_id: None,
            resolves: false,
        }
    }

    #[test]
    fn agreement_decides_disagreement_conflicts_until_resolved() {
        use Decision::{Approve, Reject};
        let mut ledger = Ledger {
            entries: vec![
                entry("ana", "1", "a", Approve),
                entry("bo", "2", "a", Approve),
                entry("ana", "3", "b", Approve),
                entry("bo", "4", "b", Reject),
                entry("ana", "5", "c", Reject),
                entry("ana", "6", "c", Approve),
            ],
        };
        let verdicts = ledger.verdicts();
        assert_eq!(verdicts["a"], Verdict::Approved);
        assert_eq!(verdicts["b"], Verdict::Conflict);
        assert_eq!(
            verdicts["c"],
            Verdict::Approved,
            "a reviewer's latest decision stands"
        );
        ledger.entries.push(ReviewEntry {
            resolves: true,
            ..entry("cy", "7", "b", Reject)
        });
        assert_eq!(ledger.verdicts()["b"], Verdict::Rejected);
    }
}
