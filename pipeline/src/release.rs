//! Releases in `curated/`: one immutable folder per version, `v<semver>/`,
//! each a complete snapshot of the benchmark. Nothing here writes into an
//! existing version folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input_file;
use crate::record::{Fingerprint, Provenance};

pub const MANIFEST: &str = "manifest.json";
pub const CASES: &str = "cases.jsonl";
pub const SIUO_JSON: &str = "siuo.json";
pub const PARQUET: &str = "data/test-00000-of-00001.parquet";
pub const CHANGELOG: &str = "CHANGELOG.md";
pub const FORMAT: &str = "siuo-release/1";

/// A case as released, with everything needed to trace and re-release it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasedCase {
    pub question_id: u64,
    pub candidate_id: String,
    /// Taxonomy id of the domain.
    pub domain: String,
    /// The published SIUO category string of the domain.
    pub category: String,
    pub subcategory: String,
    pub question: String,
    /// File name under `images/`.
    pub image: String,
    pub image_blake3: String,
    pub image_description: String,
    pub safety_warning: String,
    pub reference_answer: String,
    pub fingerprint: Fingerprint,
    /// Version that first released this case.
    pub released_in: String,
    pub provenance: Provenance,
    pub checks: Vec<CheckSummary>,
}

/// Which classifier passed a case, per modality.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSummary {
    pub modality: String,
    pub classifier: String,
    pub version: String,
    /// sha256 of an embedded model's weights file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

/// The published SIUO record format, for SIUO evaluation code unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiuoRecord {
    pub question_id: u64,
    pub image: String,
    pub question: String,
    pub category: String,
    pub safety_warning: String,
    pub reference_answer: String,
}

impl From<&ReleasedCase> for SiuoRecord {
    fn from(case: &ReleasedCase) -> Self {
        SiuoRecord {
            question_id: case.question_id,
            image: case.image.clone(),
            question: case.question.clone(),
            category: case.category.clone(),
            safety_warning: case.safety_warning.clone(),
            reference_answer: case.reference_answer.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub format: String,
    pub dataset: String,
    pub license: String,
    pub version: String,
    pub parent: Option<String>,
    /// RFC 3339, from `SOURCE_DATE_EPOCH` when set.
    pub created: String,
    pub counts: Counts,
    /// `question_id`s first released in this version.
    pub added: Vec<u64>,
    /// Highest `question_id` ever assigned, up to this version; never reused.
    pub max_question_id: u64,
    /// Runs whose candidates this version added.
    pub runs: Vec<String>,
    pub config_blake3: String,
    pub taxonomy_blake3: String,
    /// Template name → blake3, over every case in the release.
    pub templates: BTreeMap<String, String>,
    pub classifiers: Vec<CheckSummary>,
    /// Every file of the release but this manifest.
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub cases: u64,
    pub added: u64,
    /// Domain (SIUO category) → counts.
    pub domains: BTreeMap<String, DomainCount>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DomainCount {
    pub cases: u64,
    /// Subcategory id → cases.
    pub subcategories: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub bytes: u64,
    pub blake3: String,
}

/// A release folder.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: Version,
    pub dir: PathBuf,
}

impl Release {
    pub fn manifest(&self) -> Result<ReleaseManifest> {
        input_file::read_json(&self.dir.join(MANIFEST))
    }

    pub fn cases(&self) -> Result<Vec<ReleasedCase>> {
        input_file::read_jsonl(&self.dir.join(CASES))
    }

    pub fn name(&self) -> String {
        format!("v{}", self.version)
    }
}

/// Every finished release, oldest version first. Folders being built
/// (dot-prefixed) and folders without a manifest are not releases.
pub fn list(curated: &Path) -> Result<Vec<Release>> {
    if !curated.is_dir() {
        return Ok(Vec::new());
    }
    let mut releases = Vec::new();
    for entry in std::fs::read_dir(curated).map_err(|e| Error::io(curated, e))? {
        let entry = entry.map_err(|e| Error::io(curated, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(version) = name.strip_prefix('v').and_then(|v| Version::parse(v).ok()) else {
            continue;
        };
        if entry.path().join(MANIFEST).is_file() {
            releases.push(Release {
                version,
                dir: entry.path(),
            });
        }
    }
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(releases)
}

/// Release timestamp: `SOURCE_DATE_EPOCH` when set (reproducible builds),
/// else now.
pub fn timestamp() -> Result<String> {
    let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value.trim().parse::<i64>().map_err(|_| Error::Config {
            path: "SOURCE_DATE_EPOCH".into(),
            problems: vec![format!("`{value}` is not a number of seconds since 1970")],
        })?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ))
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `curated/CHANGELOG.md`, rebuilt from every release so it can never
/// disagree with them.
pub fn render_changelog(releases: &[(ReleaseManifest, Vec<ReleasedCase>)]) -> String {
    let mut out = String::from(
        "# Changelog\n\nEvery release of this benchmark, newest first. Written by `siuo export` from the release manifests; do not edit.\n",
    );
    for (manifest, cases) in releases.iter().rev() {
        let date = manifest.created.get(..10).unwrap_or(&manifest.created);
        let _ = write!(out, "\n## v{} ({date})\n\n", manifest.version);
        match &manifest.parent {
            Some(parent) => {
                let _ = writeln!(
                    out,
                    "Parent: {parent}. {} cases, {} added.",
                    manifest.counts.cases, manifest.counts.added
                );
            }
            None => {
                let _ = writeln!(out, "First release: {} cases.", manifest.counts.cases);
            }
        }
        let mut added: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for case in cases
            .iter()
            .filter(|c| manifest.added.contains(&c.question_id))
        {
            added
                .entry(case.category.as_str())
                .or_default()
                .push(case.question_id);
        }
        out.push_str("\n### Added\n\n");
        if added.is_empty() {
            out.push_str("- none\n");
        }
        for (category, ids) in added {
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "- {category}: {}", ids.join(", "));
        }
        out.push_str("\n### Changed\n\n- none\n\n### Retired\n\n- none\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
