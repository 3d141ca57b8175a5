//! `curated/CHANGELOG.md`, rebuilt from every release's manifest and the
//! domains of its added cases (from [`super::released_index`], which reads
//! each release once in a project's life) so it can never disagree with
//! them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{CaseChange, Counts, Retirement};

/// What the changelog shows of a release's manifest; its file list is
/// skipped unread.
#[derive(Debug, Deserialize)]
pub struct ReleaseHistory {
    pub version: String,
    pub created: String,
    pub parent: Option<String>,
    #[serde(default)]
    pub bump: String,
    pub counts: Counts,
    #[serde(default)]
    pub changed: Vec<CaseChange>,
    #[serde(default)]
    pub retired: Vec<Retirement>,
}

/// Each release's history with its added cases as (category, question_id).
pub fn render(releases: &[(ReleaseHistory, Vec<(String, u64)>)]) -> String {
    let mut out = String::from(
        "# Changelog\n\nEvery release of this benchmark, newest first, with the `question_id`s added, changed and retired per domain. Written by siuo from the release manifests; do not edit.\n",
    );
    for (manifest, added) in releases.iter().rev() {
        let date = manifest.created.get(..10).unwrap_or(&manifest.created);
        let _ = write!(out, "\n## v{} ({date})\n\n", manifest.version);
        let counts = &manifest.counts;
        match &manifest.parent {
            Some(parent) => {
                let _ = writeln!(
                    out,
                    "Parent: {parent}. {} cases: {} added, {} changed, {} retired.",
                    counts.cases, counts.added, counts.changed, counts.retired
                );
                if !manifest.bump.is_empty() {
                    let _ = writeln!(out, "Version bump: {}.", manifest.bump);
                }
            }
            None => {
                let _ = writeln!(out, "First release: {} cases.", counts.cases);
            }
        }
        let added =
            (added.iter()).map(|(category, question_id)| (category.as_str(), *question_id, None));
        section(&mut out, "Added", added);
        let changed = manifest.changed.iter().map(|c| {
            let detail = format!("{}: {}", c.fields.join(", "), c.reason);
            (c.category.as_str(), c.question_id, Some(detail))
        });
        section(&mut out, "Changed", changed);
        let retired = manifest
            .retired
            .iter()
            .map(|r| (r.category.as_str(), r.question_id, Some(r.reason.clone())));
        section(&mut out, "Retired", retired);
    }
    out
}

/// One heading with a line per domain: ids, each with its detail if any.
fn section<'a>(
    out: &mut String,
    heading: &str,
    entries: impl Iterator<Item = (&'a str, u64, Option<String>)>,
) {
    let mut by_domain: BTreeMap<&str, Vec<(u64, Option<String>)>> = BTreeMap::new();
    for (category, question_id, detail) in entries {
        by_domain
            .entry(category)
            .or_default()
            .push((question_id, detail));
    }
    let _ = write!(out, "\n### {heading}\n\n");
    if by_domain.is_empty() {
        out.push_str("- none\n");
    }
    for (category, mut ids) in by_domain {
        ids.sort();
        let ids: Vec<String> = ids
            .into_iter()
            .map(|(id, detail)| match detail {
                Some(detail) => format!("{id} ({})", markdown_text(&detail)),
                None => id.to_string(),
            })
            .collect();
        let _ = writeln!(out, "- {category}: {}", ids.join(", "));
    }
}

/// Recorded text as inert Markdown: one line, and no HTML or Markdown
/// structure (older ledgers may hold reasons with newlines or tags).
pub fn markdown_text(text: &str) -> String {
    let line = crate::text_normal::one_line(text);
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod markdown_tests {
    use super::markdown_text;

    #[test]
    fn reasons_cannot_inject_headings_or_html() {
        assert_eq!(
            markdown_text("bad\n\n## v9.9.9\n<script>x</script>"),
            "bad \\#\\# v9.9.9 &lt;script&gt;x&lt;/script&gt;"
        );
        assert_eq!(markdown_text("plain reason, fine"), "plain reason, fine");
    }
}
