//! `siuo diff VA VB`: the cases added, changed and retired between two
//! releases, matched by `question_id`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use siuo_core::error::Result;
use siuo_core::release::{CASES, CaseContent, Release};

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDiff {
    pub from: String,
    pub to: String,
    pub added: Vec<CaseRef>,
    pub changed: Vec<ChangedCase>,
    pub retired: Vec<CaseRef>,
    pub unchanged: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseRef {
    pub question_id: u64,
    pub category: String,
    /// The recorded reason of a retirement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangedCase {
    pub question_id: u64,
    pub category: String,
    /// Field → (before, after), for the fields that differ.
    pub fields: BTreeMap<String, (String, String)>,
    /// The recorded reason of the relabel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `releases`: every release, to find the recorded reasons of the changes
/// and retirements made between `from` and `to`.
pub fn diff(releases: &[Release], from: &Release, to: &Release) -> Result<ReleaseDiff> {
    let mut retired_reasons = BTreeMap::new();
    let mut change_reasons = BTreeMap::new();
    for release in releases
        .iter()
        .filter(|r| r.version > from.version && r.version <= to.version)
    {
        let manifest = release.manifest()?;
        for retirement in manifest.retired {
            retired_reasons.insert(retirement.question_id, retirement.reason);
        }
        for change in manifest.changed {
            change_reasons.insert(change.question_id, change.reason);
        }
    }
    // Only the content of each case is read, not its whole record.
    let contents = |release: &Release| -> Result<BTreeMap<u64, CaseContent>> {
        let mut cases = BTreeMap::new();
        siuo_core::input_file::for_each_jsonl(&release.dir.join(CASES), |c: CaseContent| {
            cases.insert(c.question_id, c);
            Ok(())
        })?;
        Ok(cases)
    };
    let (before, after) = (contents(from)?, contents(to)?);
    let reference = |c: &CaseContent| CaseRef {
        question_id: c.question_id,
        category: c.category.clone(),
        reason: retired_reasons.get(&c.question_id).cloned(),
    };
    let mut result = ReleaseDiff {
        from: from.name(),
        to: to.name(),
        added: after
            .values()
            .filter(|c| !before.contains_key(&c.question_id))
            .map(reference)
            .collect(),
        changed: Vec::new(),
        retired: before
            .values()
            .filter(|c| !after.contains_key(&c.question_id))
            .map(reference)
            .collect(),
        unchanged: 0,
    };
    for (id, old) in &before {
        let Some(new) = after.get(id) else { continue };
        let differences = new.differences(old);
        if differences.is_empty() {
            result.unchanged += 1;
            continue;
        }
        result.changed.push(ChangedCase {
            question_id: *id,
            category: new.category.clone(),
            fields: differences
                .into_iter()
                .map(|(name, before, after)| (name.to_owned(), (before, after)))
                .collect(),
            reason: change_reasons.get(id).cloned(),
        });
    }
    Ok(result)
}

/// Text from a release file, as it may be printed.
fn t(text: &str) -> String {
    siuo_core::text_normal::terminal(text)
}

impl ReleaseDiff {
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} → {}: {} added, {} changed, {} retired, {} unchanged\n",
            self.from,
            self.to,
            self.added.len(),
            self.changed.len(),
            self.retired.len(),
            self.unchanged
        );
        for case in &self.added {
            let _ = writeln!(out, "+ {} ({})", case.question_id, t(&case.category));
        }
        let reason = |reason: &Option<String>| {
            reason
                .as_ref()
                .map(|r| format!(": {}", t(r)))
                .unwrap_or_default()
        };
        for case in &self.changed {
            let _ = writeln!(
                out,
                "~ {} ({}){}",
                case.question_id,
                t(&case.category),
                reason(&case.reason)
            );
            for (field, (old, new)) in &case.fields {
                let _ = writeln!(out, "    {field}: {old:?} → {new:?}");
            }
        }
        for case in &self.retired {
            let _ = writeln!(
                out,
                "- {} ({}){}",
                case.question_id,
                t(&case.category),
                reason(&case.reason)
            );
        }
        out
    }
}
