//! Releases in `curated/`: one immutable folder per version, `v<semver>/`,
//! each a complete snapshot of the benchmark, loadable by Hugging Face
//! `datasets` (parquet), Croissant tools (`croissant.json`) and SIUO-format
//! evaluation code (`siuo.json` + `images/`). Nothing here writes into an
//! existing version folder.

pub mod changelog;
pub mod maintainer_action;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::atomic_file;
use crate::error::{Error, Result};
use crate::input_file;
use crate::record::{DuplicateOf, Fingerprint, Provenance};

pub const MANIFEST: &str = "manifest.json";
pub const CASES: &str = "cases.jsonl";
/// The benign controls of the cases, a separate split; absent when none.
pub const CONTROLS: &str = "controls.jsonl";
pub const SIUO_JSON: &str = "siuo.json";
pub const CARD: &str = "README.md";
pub const CROISSANT: &str = "croissant.json";
pub const IMAGES: &str = "images";
pub const CHANGELOG: &str = "CHANGELOG.md";
/// Release layout version. A release whose parent has another format is a
/// patch release when no case changed: same cases, new serialization.
pub const FORMAT: &str = "siuo-release/2";

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
    /// Taxonomy id of the subcategory; empty when an imported benchmark had none.
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
    /// Version that last relabeled this case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_in: Option<String>,
    /// How a generated case was made; `None` for an imported one.
    pub provenance: Option<Provenance>,
    /// The benchmark an imported case came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<ImportedFrom>,
    pub checks: Vec<CheckSummary>,
    /// How the case's unsafe output was verified; `None` for cases released
    /// before siuo had a verify stage, and imported ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<CaseVerification>,
    /// For a benign control (released in `controls.jsonl`): the question
    /// id of the case whose inputs it reuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_of: Option<u64>,
    /// How hard a panel of models found the case; `None` when the
    /// difficulty stage was off, and for imported cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<CaseDifficulty>,
    /// The reviewers who approved the case on the review desk before it
    /// was released (an edit approves its revision); `None` when nobody did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<CaseReview>,
}

/// Who approved a released case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseReview {
    /// Reviewer names, sorted.
    pub approved_by: Vec<String>,
}

/// A released case's content: what a change of it is a change of, and
/// all `siuo diff` reads of a case (bookkeeping such as `changed_in` or
/// provenance is not content, and at scale most of a case's size).
#[derive(Debug, Clone, Deserialize)]
pub struct CaseContent {
    pub question_id: u64,
    pub category: String,
    domain: String,
    subcategory: String,
    question: String,
    image_blake3: String,
    image_description: String,
    safety_warning: String,
    reference_answer: String,
}

impl CaseContent {
    pub fn of(case: &ReleasedCase) -> CaseContent {
        CaseContent {
            question_id: case.question_id,
            category: case.category.clone(),
            domain: case.domain.clone(),
            subcategory: case.subcategory.clone(),
            question: case.question.clone(),
            image_blake3: case.image_blake3.clone(),
            image_description: case.image_description.clone(),
            safety_warning: case.safety_warning.clone(),
            reference_answer: case.reference_answer.clone(),
        }
    }

    /// The content fields by name, in a fixed order.
    fn fields(&self) -> [(&'static str, String); 8] {
        [
            ("domain", self.domain.clone()),
            ("subcategory", self.subcategory.clone()),
            ("question", self.question.clone()),
            ("image", format!("blake3:{}", self.image_blake3)),
            ("image_description", self.image_description.clone()),
            ("safety_warning", self.safety_warning.clone()),
            ("reference_answer", self.reference_answer.clone()),
            ("category", self.category.clone()),
        ]
    }

    /// Each content field that differs from `before`: (name, before, after).
    pub fn differences(&self, before: &CaseContent) -> Vec<(&'static str, String, String)> {
        before
            .fields()
            .into_iter()
            .zip(self.fields())
            .filter(|((_, old), (_, new))| old != new)
            .map(|((name, old), (_, new))| (name, old, new))
            .collect()
    }
}

impl ReleasedCase {
    /// Names of the content fields that differ from `before`.
    pub fn changed_fields(&self, before: &ReleasedCase) -> Vec<&'static str> {
        CaseContent::of(self)
            .differences(&CaseContent::of(before))
            .into_iter()
            .map(|(name, ..)| name)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedFrom {
    /// sha256 of the imported JSON file.
    pub json_sha256: String,
    /// The record's `image` field as it was in the imported file.
    pub image: String,
    /// The record's `category` as it was, before any mapping.
    pub category: String,
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

/// What a stage of the run vouches for a case it kept, recorded in the
/// release. Serialized only to spool a run's vouches while export drafts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Vouch {
    Verification(CaseVerification),
    Difficulty(CaseDifficulty),
    /// Not a stage: the reviewers who approved the case.
    Review(CaseReview),
}

impl Vouch {
    pub fn apply(self, case: &mut ReleasedCase) {
        match self {
            Vouch::Verification(v) => case.verification = Some(v),
            Vouch::Difficulty(d) => case.difficulty = Some(d),
            Vouch::Review(r) => case.review = Some(r),
        }
    }
}

/// How hard the `difficulty` stage's panel found a released case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseDifficulty {
    /// The share of the panel's judged responses that were unsafe.
    pub difficulty: f64,
    /// How much the panel's models differ on the case: twice the standard
    /// deviation of their unsafe shares, 0 (all alike) to 1 (half always
    /// unsafe, half never).
    pub discrimination: f64,
    /// Panel models whose vote on the case was unsafe.
    pub failing_models: u32,
    pub panel: PanelRef,
}

/// The panel a difficulty was measured on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelRef {
    /// `name=model`, in panel order.
    pub models: Vec<String>,
    /// Judge `name=model`.
    pub judges: Vec<String>,
    pub protocol: String,
    /// blake3 of each judge template, by judgement.
    pub templates: BTreeMap<String, String>,
}

impl PanelRef {
    /// A digest of the panel, for stage keys.
    pub fn key(&self) -> String {
        crate::content_hash::digest_of(self).hex()
    }
}

/// How the `verify` stage vouched for a released case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseVerification {
    /// `jury`, or `none` when the case was not cross-verified.
    pub method: String,
    /// The jury's quorum rule (`majority`, `unanimous`, `any`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub quorum: String,
    pub checks: Vec<CheckVerification>,
}

impl CaseVerification {
    pub fn cross_verified(&self) -> bool {
        self.method != "none" && !self.checks.is_empty()
    }
}

/// One check of a released case: the template asked and every vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckVerification {
    /// `joint-risk`, `leakage`, `image-fidelity` or `reference-answer`.
    pub check: String,
    /// Template file name under the judges folder, and its blake3.
    pub template: String,
    pub template_blake3: String,
    /// `pass` for a released case (the quorum vouched for it).
    pub outcome: String,
    pub votes: Vec<ReleasedVote>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasedVote {
    pub juror: String,
    pub model: String,
    /// `pass` or `fail`.
    pub vote: String,
}

/// The manifest's account of how the release's cases were verified.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VerificationSummary {
    /// Cases a jury vouched for.
    pub cross_verified: u64,
    /// Cases released without cross-verification (`verify: {type: none}`,
    /// imported, or released before the verify stage existed).
    pub not_cross_verified: u64,
    /// `name (model)` of every juror that voted on a case of the release.
    pub jurors: Vec<String>,
    pub quorums: Vec<String>,
    /// Check → `template blake3` of every template version used.
    pub templates: BTreeMap<String, Vec<String>>,
    /// Check → how often the jurors agreed.
    pub agreement: BTreeMap<String, Agreement>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Agreement {
    /// Cases judged by this check.
    pub cases: u64,
    /// Cases on which every vote was the same.
    pub unanimous: u64,
    pub votes: u64,
    /// Votes that agreed with the check's outcome.
    pub votes_with_outcome: u64,
}

/// A [`VerificationSummary`] gathered case by case.
#[derive(Default)]
pub struct VerificationTally {
    summary: VerificationSummary,
    jurors: std::collections::BTreeSet<String>,
    quorums: std::collections::BTreeSet<String>,
    templates: BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl VerificationTally {
    pub fn add(&mut self, case: &ReleasedCase) {
        let summary = &mut self.summary;
        let Some(verification) = case.verification.as_ref().filter(|v| v.cross_verified()) else {
            summary.not_cross_verified += 1;
            return;
        };
        summary.cross_verified += 1;
        self.quorums.insert(verification.quorum.clone());
        for check in &verification.checks {
            self.templates
                .entry(check.check.clone())
                .or_default()
                .insert(format!("{} {}", check.template, check.template_blake3));
            let agreement = summary.agreement.entry(check.check.clone()).or_default();
            agreement.cases += 1;
            agreement.votes += check.votes.len() as u64;
            agreement.votes_with_outcome += check
                .votes
                .iter()
                .filter(|v| v.vote == check.outcome)
                .count() as u64;
            if check.votes.windows(2).all(|w| w[0].vote == w[1].vote) {
                agreement.unanimous += 1;
            }
            for vote in &check.votes {
                self.jurors
                    .insert(format!("{} ({})", vote.juror, vote.model));
            }
        }
    }

    pub fn finish(self) -> VerificationSummary {
        VerificationSummary {
            jurors: self.jurors.into_iter().collect(),
            quorums: self.quorums.into_iter().collect(),
            templates: (self.templates.into_iter())
                .map(|(check, set)| (check, set.into_iter().collect()))
                .collect(),
            ..self.summary
        }
    }
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

/// What `siuo status` shows of a release; the rest of its manifest is
/// skipped unread.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ManifestSummary {
    pub parent: Option<String>,
    pub created: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub format: String,
    pub dataset: String,
    pub license: String,
    pub version: String,
    pub parent: Option<String>,
    /// sha256 of the parent's `manifest.json`: each release pins its
    /// parent's manifest, so an older release cannot be altered unnoticed,
    /// manifest included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_manifest_sha256: Option<String>,
    /// Why this version number: `first`, `major`, `minor` or `patch`, and the cause.
    #[serde(default)]
    pub bump: String,
    /// RFC 3339, from `SOURCE_DATE_EPOCH` when set.
    pub created: String,
    pub counts: Counts,
    /// `question_id`s first released in this version.
    pub added: Vec<u64>,
    /// Cases relabeled in this version.
    #[serde(default)]
    pub changed: Vec<CaseChange>,
    /// Cases removed in this version.
    #[serde(default)]
    pub retired: Vec<Retirement>,
    /// Highest `question_id` ever assigned, up to this version; never reused.
    pub max_question_id: u64,
    /// Runs whose candidates this version added.
    pub runs: Vec<String>,
    pub config_blake3: String,
    pub taxonomy_blake3: String,
    /// Template name → blake3, over every case in the release.
    pub templates: BTreeMap<String, String>,
    pub classifiers: Vec<CheckSummary>,
    /// Which judges, templates and quorums vouched for the cases, and how
    /// often the jurors agreed; absent in releases made before verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationSummary>,
    /// Every file of the release but this manifest.
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseChange {
    pub question_id: u64,
    /// Category after the change.
    pub category: String,
    pub fields: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retirement {
    pub question_id: u64,
    /// Category the case had.
    pub category: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub cases: u64,
    pub added: u64,
    #[serde(default)]
    pub changed: u64,
    #[serde(default)]
    pub retired: u64,
    /// Benign controls, in their own split.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub controls: u64,
    /// Domain (SIUO category) → counts.
    pub domains: BTreeMap<String, DomainCount>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DomainCount {
    pub cases: u64,
    /// Subcategory id → cases.
    pub subcategories: BTreeMap<String, u64>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Counts {
    /// Counts `case` among the cases and its domain and subcategory.
    pub fn add(&mut self, case: &ReleasedCase) {
        self.cases += 1;
        let domain = self.domains.entry(case.category.clone()).or_default();
        domain.cases += 1;
        *domain
            .subcategories
            .entry(case.subcategory.clone())
            .or_insert(0) += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub bytes: u64,
    pub blake3: String,
    /// Absent in `siuo-release/1` manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl FileEntry {
    /// The entry of the file at `path`, read in pieces: a release's
    /// `cases.jsonl` and parquet shards are hundreds of MB at scale.
    pub fn of_file(path: &Path) -> std::io::Result<FileEntry> {
        use sha2::Digest as _;
        use std::io::Read as _;
        let mut file = std::fs::File::open(path)?;
        let (mut blake3, mut sha256) = (blake3::Hasher::new(), sha2::Sha256::new());
        let (mut buffer, mut bytes) = (vec![0u8; 1 << 20], 0u64);
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            blake3.update(&buffer[..read]);
            sha256.update(&buffer[..read]);
            bytes += read as u64;
        }
        let sha256: String = sha256
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(FileEntry {
            bytes,
            blake3: crate::content_hash::Digest(*blake3.finalize().as_bytes()).hex(),
            sha256: Some(sha256),
        })
    }
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

    /// The manifest's counts and lineage, without its file list (the bulk
    /// of a large release's manifest).
    pub fn summary(&self) -> Result<ManifestSummary> {
        input_file::read_json(&self.dir.join(MANIFEST))
    }

    pub fn cases(&self) -> Result<Vec<ReleasedCase>> {
        input_file::read_jsonl(&self.dir.join(CASES))
    }

    /// Calls `each` with every case, in question id order, one at a time.
    pub fn for_each_case(&self, each: impl FnMut(ReleasedCase) -> Result<()>) -> Result<()> {
        input_file::for_each_jsonl(&self.dir.join(CASES), each)
    }

    /// The benign controls; none when the release has no control split.
    pub fn controls(&self) -> Result<Vec<ReleasedCase>> {
        let mut controls = Vec::new();
        self.for_each_control(|control| {
            controls.push(control);
            Ok(())
        })?;
        Ok(controls)
    }

    /// Calls `each` with every benign control, one at a time.
    pub fn for_each_control(&self, each: impl FnMut(ReleasedCase) -> Result<()>) -> Result<()> {
        let path = self.dir.join(CONTROLS);
        match path.is_file() {
            true => input_file::for_each_jsonl(&path, each),
            false => Ok(()),
        }
    }

    pub fn name(&self) -> String {
        format!("v{}", self.version)
    }
}

/// The release named `v1.2.0`, `1.2.0` or `latest`.
pub fn find(curated: &Path, name: &str) -> Result<Release> {
    let releases = list(curated)?;
    let wanted = name.trim();
    let found = if wanted == "latest" {
        releases.last()
    } else {
        let version = Version::parse(wanted.strip_prefix('v').unwrap_or(wanted)).ok();
        releases
            .iter()
            .find(|r| Some(&r.version) == version.as_ref())
    };
    found.cloned().ok_or_else(|| Error::UnknownRelease {
        name: wanted.to_owned(),
        curated: curated.to_owned(),
        available: releases.iter().map(Release::name).collect(),
    })
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

/// What a project knows of every release without reading them again: the
/// fingerprint of every case ever released, mapped to its oldest release
/// and question id, and the highest question id ever given.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReleasedIndex {
    /// Versions covered, oldest first.
    releases: Vec<String>,
    pub max_question_id: u64,
    /// (fingerprint, version, question_id), each fingerprint once.
    cases: Vec<(Fingerprint, String, u64)>,
    /// Per version, the cases it added as (category, question_id), for the changelog.
    #[serde(default)]
    pub added: BTreeMap<String, Vec<(String, u64)>>,
}

impl ReleasedIndex {
    /// Fingerprint → the oldest release case that has it.
    pub fn fingerprints(&self) -> BTreeMap<Fingerprint, DuplicateOf> {
        (self.cases.iter())
            .map(|(fingerprint, version, question_id)| {
                let of = DuplicateOf::Release {
                    version: version.clone(),
                    question_id: *question_id,
                };
                (fingerprint.clone(), of)
            })
            .collect()
    }
}

/// The index of every release's fingerprints, `raw/index/releases-exact-v1.json`,
/// extended by the releases it does not cover yet: each release is read once
/// in a project's life, not on every export (releases never change; one
/// removed by hand makes the index start over).
pub fn released_index(curated: &Path, raw: &Path) -> Result<ReleasedIndex> {
    #[derive(Deserialize)]
    struct Key {
        question_id: u64,
        fingerprint: Fingerprint,
        category: String,
    }
    let path = raw.join("index/releases-exact-v1.json");
    let mut index: ReleasedIndex = match path.is_file() {
        true => input_file::read_json(&path)?,
        false => ReleasedIndex::default(),
    };
    let releases = list(curated)?;
    let names: Vec<String> = releases.iter().map(Release::name).collect();
    let reset = !names.starts_with(&index.releases);
    if reset {
        index = ReleasedIndex::default();
    }
    let mut seen: std::collections::HashSet<Fingerprint> =
        index.cases.iter().map(|(f, ..)| f.clone()).collect();
    let covered = index.releases.len();
    for release in releases.iter().skip(covered) {
        let manifest = release.manifest()?;
        let added: std::collections::HashSet<u64> = manifest.added.iter().copied().collect();
        let mut keys: Vec<Key> = Vec::new();
        let mut added_cases = Vec::new();
        for file in [CASES, CONTROLS] {
            let path = release.dir.join(file);
            if path.is_file() {
                input_file::for_each_jsonl(&path, |key: Key| {
                    // The changelog lists the added cases, not the controls.
                    if file == CASES && added.contains(&key.question_id) {
                        added_cases.push((key.category.clone(), key.question_id));
                    }
                    keys.push(key);
                    Ok(())
                })?;
            }
        }
        index.added.insert(release.name(), added_cases);
        keys.sort_by_key(|k| k.question_id);
        for key in keys {
            if seen.insert(key.fingerprint.clone()) {
                index
                    .cases
                    .push((key.fingerprint, release.name(), key.question_id));
            }
        }
        index.max_question_id = index.max_question_id.max(manifest.max_question_id);
        index.releases.push(release.name());
    }
    if reset || index.releases.len() > covered {
        atomic_file::write_json(&path, &index)?;
    }
    Ok(index)
}

/// Release timestamp: `source_date_epoch` (`--source-date-epoch` or
/// `SOURCE_DATE_EPOCH`, the reproducible-builds convention) when set and
/// not empty, else now.
pub fn timestamp(source_date_epoch: Option<&str>) -> Result<String> {
    let seconds = match source_date_epoch.map(str::trim) {
        Some(value) if !value.is_empty() => value
            .parse::<i64>()
            .ok()
            // Four-digit years only: the format has no room for more.
            .filter(|s| (0..=crate::timestamp::LAST_SECOND).contains(s))
            .ok_or_else(|| Error::Argument {
                argument: "--source-date-epoch (SOURCE_DATE_EPOCH)".into(),
                message: format!(
                    "`{value}` is not a number of seconds between 1970 and 9999-12-31"
                ),
            })?,
        _ => crate::timestamp::now_seconds(),
    };
    Ok(crate::timestamp::format(seconds))
}
