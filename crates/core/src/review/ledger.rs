//! The review ledger, `curated/reviews.jsonl`: every decision people made
//! on the review desk, one JSON object per line, append-only and committed
//! with the releases. The chain reads it through [`Ledger::verdicts`] and
//! [`Ledger::revise`]; nothing here knows a stage.
//!
//! People merge and edit the file, so every line is checked when it is
//! read, with the desk's rules and more ([`Ledger::read`]): a line dated in
//! the future, a name that rewrites a terminal or an edit whose revision
//! is not the one its fields make is an error naming the line, and nothing
//! is decided from a ledger with such a line. Whether each candidate is in
//! the run the line names is checked against that run ([`Ledger::check_run`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
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
    /// Where the entry is in the ledger file (1-based); 0 for one not read
    /// from it.
    #[serde(skip)]
    pub line: usize,
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

/// Whether `id` is shaped like a candidate id (`c` and 16 hex digits):
/// the only ids the chain makes.
pub fn is_candidate_id(id: &str) -> bool {
    is_hex_id(id, 'c', 16)
}

/// Whether `id` is shaped like a run id (`r` and 12 hex digits).
pub fn is_run_id(id: &str) -> bool {
    is_hex_id(id, 'r', 12)
}

/// `prefix` and `digits` lowercase hex digits.
fn is_hex_id(id: &str, prefix: char, digits: usize) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == digits
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Checks one ledger entry as the desk would have written it; returns
/// its time. The cause when it is not one.
pub fn check_entry(entry: &ReviewEntry) -> std::result::Result<crate::timestamp::Instant, String> {
    use crate::text_normal::{check_name, check_reason, check_text};
    let shown = |text: &str| crate::text_normal::shown(text, 40);
    check_name(&entry.reviewer)
        .map_err(|p| format!("the reviewer name `{}` {p}", shown(&entry.reviewer)))?;
    let recorded =
        crate::timestamp::parse_past(&entry.recorded).map_err(|p| format!("`recorded`: {p}"))?;
    if !is_candidate_id(&entry.candidate_id) {
        return Err(format!(
            "`{}` is not a candidate id (c and 16 hex digits)",
            shown(&entry.candidate_id)
        ));
    }
    if !is_run_id(&entry.run_id) {
        return Err(match entry.run_id.is_empty() {
            true => "the entry names no run (`run_id`); the desk records the run it showed the candidate in".to_owned(),
            false => format!("`{}` is not a run id (r and 12 hex digits)", shown(&entry.run_id)),
        });
    }
    check_reason(&entry.reason).map_err(|p| format!("the reason {p}"))?;
    let needs_reason = matches!(
        entry.decision,
        Decision::Reject | Decision::Retire | Decision::Relabel
    );
    if needs_reason && entry.reason.trim().is_empty() {
        let noun = match entry.decision {
            Decision::Reject => "rejection",
            Decision::Retire => "retirement",
            _ => "relabel",
        };
        return Err(format!("a {noun} needs a reason"));
    }
    match entry.decision {
        Decision::Edit => {
            let (Some(after), Some(revision)) = (&entry.after, &entry.revision) else {
                return Err("an edit needs `after` and `revision`".to_owned());
            };
            for (field, text) in [
                ("question", &after.question),
                ("safety_warning", &after.safety_warning),
                ("reference_answer", &after.reference_answer),
                ("domain", &after.domain),
                ("subcategory", &after.subcategory),
            ] {
                check_text(text).map_err(|p| format!("the edited {field} {p}"))?;
            }
            if after.question.trim().is_empty() {
                return Err("the edited question is empty".to_owned());
            }
            if entry.before.as_ref() == Some(after) {
                return Err("an edit that changes nothing".to_owned());
            }
            let derived = revision_id(&entry.candidate_id, after);
            if *revision != derived {
                return Err(format!(
                    "the edit's `revision` is `{}`, but its candidate and fields make {derived}",
                    shown(revision)
                ));
            }
        }
        _ if entry.after.is_some() && entry.decision != Decision::Relabel => {
            return Err(format!("a {} has no `after`", entry.decision.name()));
        }
        _ if entry.revision.is_some() => {
            return Err(format!("a {} has no `revision`", entry.decision.name()));
        }
        Decision::Retire | Decision::Relabel if entry.question_id.is_none_or(|q| q == 0) => {
            return Err(format!(
                "a {} names the released case (`question_id`, from 1)",
                entry.decision.name()
            ));
        }
        _ => {}
    }
    Ok(recorded)
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
    /// Reads `curated/reviews.jsonl` (empty when absent), checking every
    /// line (see [`check_entry`]). Lines merged by git from several
    /// reviewers may be out of time order; decisions are ordered by their
    /// time, ties in file order.
    pub fn read(curated: &Path) -> Result<Ledger> {
        let path = ledger_path(curated);
        if !path.is_file() {
            return Ok(Ledger::default());
        }
        let mut entries: Vec<(crate::timestamp::Instant, ReviewEntry)> = Vec::new();
        let mut reader = input_file::JsonlReader::open(&path)?;
        while let Some(mut entry) = reader.next_record::<ReviewEntry>()? {
            entry.line = reader.line_number();
            let recorded = check_entry(&entry).map_err(|message| Error::InvalidLine {
                path: path.clone(),
                line: entry.line,
                message,
            })?;
            entries.push((recorded, entry));
        }
        entries.sort_by_key(|(recorded, _)| *recorded);
        Ok(Ledger {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
        })
    }

    /// Checks the entries that name `run_id` against its candidates:
    /// each must be about one of them, or about a revision an earlier
    /// edit of one made. A decision about anything else is an error naming
    /// its line: it would be counted in the figures while it decides
    /// nothing that exists.
    pub fn check_run(&self, path: &Path, run_id: &str, candidates: &HashSet<String>) -> Result<()> {
        let mut revisions: HashSet<&str> = HashSet::new();
        for entry in self.entries.iter().filter(|e| e.run_id == run_id) {
            let id = entry.candidate_id.as_str();
            if !candidates.contains(id) && !revisions.contains(id) {
                return Err(Error::InvalidLine {
                    path: path.to_owned(),
                    line: entry.line,
                    message: format!(
                        "candidate {id} is not in run {run_id} (nor a revision an earlier edit made); a decision must be about a candidate of the run it names"
                    ),
                });
            }
            if let (Decision::Edit, Some(revision)) = (entry.decision, &entry.revision) {
                revisions.insert(revision);
            }
        }
        Ok(())
    }

    /// The runs the entries name, sorted.
    pub fn runs(&self) -> BTreeSet<&str> {
        self.entries.iter().map(|e| e.run_id.as_str()).collect()
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

pub const UNREVIEWED: &str = "unreviewed";

/// A verdict name for filters: `unreviewed` when nobody decided.
pub fn verdict_name(verdict: Option<&Verdict>) -> &'static str {
    verdict.map_or(UNREVIEWED, Verdict::name)
}

/// How many of `ids` stand at each verdict, `unreviewed` for those nobody decided.
pub fn verdict_counts<'a>(
    ledger: &Ledger,
    ids: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<&'static str, usize> {
    let verdicts = ledger.verdicts();
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(verdict_name(verdicts.get(id))).or_default() += 1;
    }
    counts
}

/// Counts as words: `2 approved, 1 rejected`.
pub fn counts_text(counts: &BTreeMap<&str, usize>) -> String {
    counts
        .iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
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
            line: 0,
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
