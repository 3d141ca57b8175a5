//! Removals and relabels are explicit maintainer actions, recorded in
//! `curated/maintainer-actions.jsonl` (append-only, committed with the
//! releases) and applied by the next release. Whether an action is still
//! pending is read off the latest release (a retired case is absent, a
//! relabeled one carries its new labels), so the ledger is never rewritten
//! and applying twice is impossible.
//!
//! The file is edited and merged by people, so every line is checked where
//! it is read ([`read`]) with the rules `siuo retire` and `siuo relabel`
//! apply: a reason, a time in the past, a question id from 1, labels of
//! the taxonomy. A bad line is an error naming it, and nothing is applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CaseChange, ReleasedCase, Retirement};
use crate::atomic_file;
use crate::error::{Error, Result};
use crate::input_file;
use crate::taxonomy::Taxonomy;

pub const LEDGER: &str = "maintainer-actions.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MaintainerAction {
    /// Remove the case from the next release on.
    Retire {
        question_id: u64,
        reason: String,
        recorded: String,
    },
    /// Move the case to another domain and/or subcategory.
    Relabel {
        question_id: u64,
        domain: String,
        subcategory: String,
        reason: String,
        recorded: String,
    },
}

impl MaintainerAction {
    pub fn question_id(&self) -> u64 {
        match self {
            MaintainerAction::Retire { question_id, .. }
            | MaintainerAction::Relabel { question_id, .. } => *question_id,
        }
    }
}

pub fn ledger_path(curated: &Path) -> PathBuf {
    curated.join(LEDGER)
}

/// The recorded actions, in file order, each line checked (see
/// [`check_action`]).
pub fn read(curated: &Path, taxonomy: &Taxonomy) -> Result<Vec<MaintainerAction>> {
    let path = ledger_path(curated);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let mut actions = Vec::new();
    let mut reader = input_file::JsonlReader::open(&path)?;
    while let Some(action) = reader.next_record::<MaintainerAction>()? {
        check_action(&action, taxonomy).map_err(|message| Error::InvalidLine {
            path: path.clone(),
            line: reader.line_number(),
            message,
        })?;
        actions.push(action);
    }
    Ok(actions)
}

/// Why a recorded action cannot be applied, by the rules of `siuo retire`
/// and `siuo relabel`.
fn check_action(action: &MaintainerAction, taxonomy: &Taxonomy) -> std::result::Result<(), String> {
    let (MaintainerAction::Retire {
        question_id,
        reason,
        recorded,
    }
    | MaintainerAction::Relabel {
        question_id,
        reason,
        recorded,
        ..
    }) = action;
    if *question_id == 0 {
        return Err("question_ids start at 1; no case has id 0".to_owned());
    }
    if reason.trim().is_empty() {
        return Err("an action needs a reason (it goes into the changelog)".to_owned());
    }
    crate::text_normal::check_reason(reason).map_err(|p| format!("the reason {p}"))?;
    crate::timestamp::parse_past(recorded).map_err(|p| format!("`recorded`: {p}"))?;
    if let MaintainerAction::Relabel {
        domain,
        subcategory,
        ..
    } = action
    {
        let Some(known) = taxonomy.domain(domain) else {
            return Err(format!(
                "a relabel to domain `{}`, which the taxonomy does not have{}",
                crate::text_normal::shown(domain, 60),
                did_you_mean(crate::suggestion::closest(
                    domain,
                    taxonomy.domains.iter().map(|d| d.id.as_str())
                ))
            ));
        };
        if !known.subcategories.iter().any(|s| s.id == *subcategory) {
            return Err(format!(
                "a relabel to subcategory `{}`, which domain `{domain}` does not have{}",
                crate::text_normal::shown(subcategory, 60),
                did_you_mean(crate::suggestion::closest(
                    subcategory,
                    known.subcategories.iter().map(|s| s.id.as_str())
                ))
            ));
        }
    }
    Ok(())
}

fn did_you_mean(suggestion: Option<String>) -> String {
    suggestion
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Every action's case must have been released: an action naming a
/// question id above the highest ever released acts on nothing, and is
/// an error naming its line rather than a silent no-op.
pub fn check_released(curated: &Path, actions: &[MaintainerAction], highest: u64) -> Result<()> {
    match actions.iter().position(|a| a.question_id() > highest) {
        None => Ok(()),
        Some(index) => Err(Error::InvalidLine {
            path: ledger_path(curated),
            line: index + 1,
            message: format!(
                "question_id {} was never released (the highest is {highest})",
                actions[index].question_id()
            ),
        }),
    }
}

/// Appends `action` to the ledger (atomically: the whole file is rewritten
/// through a temporary file).
pub fn record(curated: &Path, taxonomy: &Taxonomy, action: &MaintainerAction) -> Result<()> {
    let mut actions = read(curated, taxonomy)?;
    actions.push(action.clone());
    atomic_file::write_jsonl(&ledger_path(curated), &actions)
}

/// A relabel's target, checked against the taxonomy; the subcategory may
/// be left out when the domain does not change.
pub fn resolve_relabel(
    taxonomy: &Taxonomy,
    ledger: &Path,
    case: &ReleasedCase,
    domain: Option<&str>,
    subcategory: Option<&str>,
) -> Result<(String, String)> {
    let record = format!("question_id {}", case.question_id);
    let domain = domain.unwrap_or(&case.domain);
    let subcategory = match subcategory {
        Some(subcategory) => subcategory,
        None if domain == case.domain => &case.subcategory,
        // An unknown domain is the problem to name, not the missing subcategory.
        None if taxonomy.domain(domain).is_none() => {
            taxonomy.resolve(ledger, &record, domain, "")?;
            &case.subcategory
        }
        None => {
            return Err(Error::InvalidRecord {
                path: ledger.to_owned(),
                record,
                message: format!(
                    "moving to domain `{domain}` needs --subcategory (one of the domain's subcategories)"
                ),
            });
        }
    };
    let (domain, subcategory) = taxonomy.resolve(ledger, &record, domain, subcategory)?;
    Ok((domain.id.clone(), subcategory.id.clone()))
}

/// What the pending actions do to `cases` (the latest release), in ledger
/// order: the snapshot after them, the net changes and the retirements.
/// Actions already reflected in `cases` change nothing.
pub fn apply(
    taxonomy: &Taxonomy,
    actions: &[MaintainerAction],
    cases: Vec<ReleasedCase>,
) -> (Vec<ReleasedCase>, Vec<CaseChange>, Vec<Retirement>) {
    let mut by_case = CaseActions::new(taxonomy, actions);
    let mut snapshot: Vec<ReleasedCase> = (cases.into_iter())
        .filter_map(|case| by_case.apply(case))
        .collect();
    snapshot.sort_by_key(|c| c.question_id);
    let (changes, retired) = by_case.finish();
    (snapshot, changes, retired)
}

/// The pending actions by the case they act on, for applying them one
/// case at a time (a release streamed from its file), and what they did.
pub struct CaseActions<'a> {
    taxonomy: &'a Taxonomy,
    by_case: BTreeMap<u64, Vec<&'a MaintainerAction>>,
    changes: Vec<CaseChange>,
    retired: Vec<Retirement>,
}

impl<'a> CaseActions<'a> {
    pub fn new(taxonomy: &'a Taxonomy, actions: &'a [MaintainerAction]) -> Self {
        let mut by_case: BTreeMap<u64, Vec<&MaintainerAction>> = BTreeMap::new();
        for action in actions {
            let (MaintainerAction::Retire { question_id, .. }
            | MaintainerAction::Relabel { question_id, .. }) = action;
            by_case.entry(*question_id).or_default().push(action);
        }
        CaseActions {
            taxonomy,
            by_case,
            changes: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// The net changes and the retirements of the cases applied, each by
    /// question id.
    pub fn finish(mut self) -> (Vec<CaseChange>, Vec<Retirement>) {
        self.changes.sort_by_key(|c| c.question_id);
        self.retired.sort_by_key(|r| r.question_id);
        (self.changes, self.retired)
    }

    /// `case` after its actions, in ledger order; `None` when it is
    /// retired. Its retirement or net change is kept for [`Self::finish`].
    pub fn apply(&mut self, mut case: ReleasedCase) -> Option<ReleasedCase> {
        let Some(actions) = self.by_case.get(&case.question_id) else {
            return Some(case);
        };
        let original = case.clone();
        let mut reasons = Vec::new();
        for action in actions {
            match action {
                MaintainerAction::Retire { reason, .. } => {
                    self.retired.push(Retirement {
                        question_id: case.question_id,
                        category: case.category,
                        reason: reason.clone(),
                    });
                    return None;
                }
                MaintainerAction::Relabel {
                    domain,
                    subcategory,
                    reason,
                    ..
                } => {
                    if case.domain == *domain && case.subcategory == *subcategory {
                        continue;
                    }
                    case.domain = domain.clone();
                    case.subcategory = subcategory.clone();
                    if let Some(d) = self.taxonomy.domain(domain) {
                        case.category = d.name.clone();
                    }
                    reasons.push(reason.clone());
                }
            }
        }
        let fields = case.changed_fields(&original);
        if !reasons.is_empty() && !fields.is_empty() {
            self.changes.push(CaseChange {
                question_id: case.question_id,
                category: case.category.clone(),
                fields: fields.into_iter().map(str::to_owned).collect(),
                reason: reasons.join("; "),
            });
        }
        Some(case)
    }
}

/// Records `siuo retire` or `siuo relabel` after checking it against the
/// latest release and the actions already pending; returns the action.
pub fn record_checked(
    curated: &Path,
    taxonomy: &Taxonomy,
    request: ActionRequest<'_>,
    recorded: String,
) -> Result<MaintainerAction> {
    let ledger = ledger_path(curated);
    let (question_id, reason) = match &request {
        ActionRequest::Retire {
            question_id,
            reason,
        }
        | ActionRequest::Relabel {
            question_id,
            reason,
            ..
        } => (
            *question_id,
            // Written into the changelog's list items, where a newline
            // would start a heading.
            crate::text_normal::one_line(reason),
        ),
    };
    let reason = reason.as_str();
    let invalid = |message: String| Error::InvalidRecord {
        path: ledger.clone(),
        record: format!("question_id {question_id}"),
        message,
    };
    if reason.is_empty() {
        return Err(invalid(
            "--reason must say why (it goes into the changelog)".to_owned(),
        ));
    }
    if question_id == 0 {
        return Err(invalid(
            "question_ids start at 1; no case has id 0".to_owned(),
        ));
    }
    let Some(latest) = super::list(curated)?.pop() else {
        return Err(invalid(format!("{} has no release yet", curated.display())));
    };
    let pending = read(curated, taxonomy)?;
    let released = latest.cases()?;
    let in_latest = released.iter().any(|c| c.question_id == question_id);
    let (cases, _, _) = apply(taxonomy, &pending, released);
    let Some(case) = cases.into_iter().find(|c| c.question_id == question_id) else {
        let highest = latest.manifest()?.max_question_id;
        return Err(invalid(if in_latest {
            "already retired: the retirement is recorded and the next release applies it".to_owned()
        } else if question_id <= highest {
            format!("already retired: not in {}", latest.name())
        } else {
            format!("no case has this id (the highest is {highest})")
        }));
    };
    let action = match request {
        ActionRequest::Retire { .. } => MaintainerAction::Retire {
            question_id,
            reason: reason.to_owned(),
            recorded,
        },
        ActionRequest::Relabel {
            domain,
            subcategory,
            ..
        } => {
            let (domain, subcategory) =
                resolve_relabel(taxonomy, &ledger, &case, domain, subcategory)?;
            if domain == case.domain && subcategory == case.subcategory {
                return Err(invalid(format!(
                    "already labeled {domain}/{subcategory}; nothing to change"
                )));
            }
            MaintainerAction::Relabel {
                question_id,
                domain,
                subcategory,
                reason: reason.to_owned(),
                recorded,
            }
        }
    };
    record(curated, taxonomy, &action)?;
    Ok(action)
}

/// What `siuo retire` and `siuo relabel` ask for.
pub enum ActionRequest<'a> {
    Retire {
        question_id: u64,
        reason: &'a str,
    },
    Relabel {
        question_id: u64,
        domain: Option<&'a str>,
        subcategory: Option<&'a str>,
        reason: &'a str,
    },
}
