//! Stage 4: publish the run's new cases as the next release,
//! `curated/v<semver>/`, a complete snapshot: the parent's cases plus the
//! new ones. The folder is built aside (`.staging-v<semver>/`) and renamed
//! into place, so a release is either whole or absent; an existing version
//! is never touched. Nothing new to release is a clean no-op.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use semver::Version;

use super::{Stage, StageReport, check, dedupe};
use crate::atomic_file;
use crate::config::Config;
use crate::content_hash::{ContentHasher, Digest};
use crate::error::{Error, Result};
use crate::input_file;
use crate::progress::Progress;
use crate::project::Project;
use crate::record::{Candidate, CheckVerdict, DedupeVerdict, Fingerprint};
use crate::release::{
    self, CheckSummary, Counts, FileEntry, Release, ReleaseManifest, ReleasedCase, SiuoRecord,
};

pub fn key(project: &Project, dedupe_key: &str) -> Digest {
    ContentHasher::new("siuo.stage.export.v1")
        .str(dedupe_key)
        .str(&Config::digest_of(&project.settings().export).hex())
        .finish()
}

pub fn run(project: &Project) -> Result<StageReport> {
    let (run_id, deduped) = dedupe::require(project, Stage::Export)?;
    let key = key(project, &deduped.key);
    let stage_dir = project.stage_dir(&run_id, Stage::Export);
    if let Some(report) = stage_dir.finished(&key)? {
        return Ok(report);
    }
    let curated = project.curated();
    remove_unfinished_releases(&curated)?;
    let new_cases = unreleased_cases(project, &run_id)?;
    let report = |release: Option<String>, kept: u64, summary: String| StageReport {
        stage: Stage::Export,
        run_id: run_id.clone(),
        key: key.hex(),
        processed: deduped.kept,
        kept,
        rejected: deduped.kept - kept,
        rejections: if deduped.kept > kept {
            BTreeMap::from([("export:already-released".to_owned(), deduped.kept - kept)])
        } else {
            BTreeMap::new()
        },
        release,
        summary,
        reused: false,
        usage: None,
    };
    let report = if new_cases.is_empty() {
        report(None, 0, "nothing new to release".to_owned())
    } else {
        let added = new_cases.len() as u64;
        let version = write_release(project, &run_id, new_cases)?;
        report(
            Some(format!("v{version}")),
            added,
            format!(
                "released v{version} with {added} new cases in {}",
                curated.join(format!("v{version}")).display()
            ),
        )
    };
    write_changelog(&curated)?;
    stage_dir.finish(&report)?;
    Ok(report)
}

/// Kept candidates of the run that no release holds yet, in release order:
/// taxonomy order of domain and subcategory, then candidate id.
fn unreleased_cases(
    project: &Project,
    run_id: &str,
) -> Result<Vec<(Candidate, Fingerprint, CheckVerdict)>> {
    let dedupe_path = project
        .stage_dir(run_id, Stage::Dedupe)
        .output(dedupe::VERDICTS);
    let kept: BTreeMap<String, Fingerprint> =
        input_file::read_jsonl::<DedupeVerdict>(&dedupe_path)?
            .into_iter()
            .filter(|v| v.decision.is_keep())
            .filter_map(|v| v.fingerprint.map(|f| (v.candidate_id, f)))
            .collect();
    let check_path = project
        .stage_dir(run_id, Stage::Check)
        .output(check::VERDICTS);
    let mut checks: BTreeMap<String, CheckVerdict> =
        input_file::read_jsonl::<CheckVerdict>(&check_path)?
            .into_iter()
            .map(|v| (v.candidate_id.clone(), v))
            .collect();
    // Another run may have released the same cases since this run's dedupe.
    let released = dedupe::released_fingerprints(project)?;
    let mut cases: Vec<(Candidate, Fingerprint, CheckVerdict)> =
        dedupe::checked_candidates(project, run_id)?
            .into_iter()
            .filter_map(|candidate| {
                let fingerprint = kept.get(&candidate.id)?.clone();
                let check = checks.remove(&candidate.id)?;
                (!released.contains_key(&fingerprint)).then_some((candidate, fingerprint, check))
            })
            .collect();
    cases.sort_by(|(a, ..), (b, ..)| {
        let order = |c: &Candidate| project.taxonomy.order(&c.domain, &c.subcategory);
        order(a).cmp(&order(b)).then_with(|| a.id.cmp(&b.id))
    });
    Ok(cases)
}

/// Leftovers of an export killed while building its folder.
fn remove_unfinished_releases(curated: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(curated) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".staging-") {
            std::fs::remove_dir_all(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

fn next_version(project: &Project, parent: Option<&Release>) -> Result<Version> {
    match parent {
        // Only additions so far: a minor release.
        Some(parent) => Ok(Version::new(
            parent.version.major,
            parent.version.minor + 1,
            0,
        )),
        None => {
            Version::parse(&project.settings().export.first_version).map_err(|e| Error::Config {
                path: project.config.display_name().into(),
                problems: vec![format!("export.first_version: {e}")],
            })
        }
    }
}

fn write_release(
    project: &Project,
    run_id: &str,
    new_cases: Vec<(Candidate, Fingerprint, CheckVerdict)>,
) -> Result<Version> {
    let curated = project.curated();
    let releases = release::list(&curated)?;
    let parent = releases.last();
    let version = next_version(project, parent)?;
    let final_dir = curated.join(format!("v{version}"));
    if final_dir.exists() {
        return Err(Error::ReleaseExists { path: final_dir });
    }
    let mut max_question_id = 0;
    for release in &releases {
        max_question_id = max_question_id.max(release.manifest()?.max_question_id);
    }
    let parent_cases = parent.map(Release::cases).transpose()?.unwrap_or_default();
    let parent_manifest = parent.map(Release::manifest).transpose()?;

    let mut added = Vec::new();
    let mut cases: Vec<(ReleasedCase, PathBuf)> = parent_cases
        .into_iter()
        .filter_map(|case| {
            let source = parent?.dir.join("images").join(&case.image);
            Some((case, source))
        })
        .collect();
    let images = project.images();
    for (candidate, fingerprint, check) in new_cases {
        max_question_id += 1;
        added.push(max_question_id);
        let source = images.path(&candidate.image);
        cases.push((
            released_case(
                project,
                max_question_id,
                candidate,
                fingerprint,
                &check,
                &version,
            ),
            source,
        ));
    }
    cases.sort_by_key(|(case, _)| case.question_id);

    let staging = curated.join(format!(".staging-v{version}"));
    let progress = Progress::new("export", cases.len() + 4, project.interactive);
    let mut image_bytes = Vec::with_capacity(cases.len());
    for (case, source) in &cases {
        progress.before_item();
        let bytes = input_file::read_bytes(source)?;
        atomic_file::write(&staging.join("images").join(&case.image), &bytes)?;
        image_bytes.push(bytes);
        progress.item_done();
    }
    let cases: Vec<ReleasedCase> = cases.into_iter().map(|(case, _)| case).collect();
    progress.before_item();
    atomic_file::write_jsonl(&staging.join(release::CASES), &cases)?;
    progress.item_done();
    progress.before_item();
    let siuo: Vec<SiuoRecord> = cases.iter().map(SiuoRecord::from).collect();
    atomic_file::write_json(&staging.join(release::SIUO_JSON), &siuo)?;
    progress.item_done();
    progress.before_item();
    let parquet_path = staging.join(release::PARQUET);
    let parquet = parquet_bytes(&cases, &image_bytes).map_err(|source| Error::Parquet {
        path: parquet_path.clone(),
        source,
    })?;
    drop(image_bytes);
    atomic_file::write(&parquet_path, &parquet)?;
    progress.item_done();
    progress.before_item();
    let manifest = manifest(
        project,
        run_id,
        &version,
        parent_manifest.as_ref(),
        &cases,
        added,
        max_question_id,
        &staging,
    )?;
    atomic_file::write_json(&staging.join(release::MANIFEST), &manifest)?;
    progress.item_done();
    progress.finish();
    std::fs::rename(&staging, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    Ok(version)
}

fn released_case(
    project: &Project,
    question_id: u64,
    candidate: Candidate,
    fingerprint: Fingerprint,
    check: &CheckVerdict,
    version: &Version,
) -> ReleasedCase {
    let category = project
        .taxonomy
        .domain(&candidate.domain)
        .map_or_else(|| candidate.domain.clone(), |d| d.name.clone());
    let summary = |modality: &str, verdicts: &[crate::record::ClassifierVerdict]| {
        verdicts
            .iter()
            .map(|v| CheckSummary {
                modality: modality.to_owned(),
                classifier: v.classifier.clone(),
                version: v.version.clone(),
                weights_sha256: v.weights_sha256.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut checks = summary("text", &check.text);
    checks.extend(summary("image", &check.image));
    ReleasedCase {
        question_id,
        image: format!("{question_id}.{}", candidate.image.extension),
        image_blake3: candidate.image.blake3,
        candidate_id: candidate.id,
        domain: candidate.domain,
        category,
        subcategory: candidate.subcategory,
        question: candidate.question,
        image_description: candidate.image_description,
        safety_warning: candidate.safety_warning,
        reference_answer: candidate.reference_answer,
        fingerprint,
        released_in: format!("v{version}"),
        provenance: candidate.provenance,
        checks,
    }
}

#[allow(clippy::too_many_arguments)]
fn manifest(
    project: &Project,
    run_id: &str,
    version: &Version,
    parent: Option<&ReleaseManifest>,
    cases: &[ReleasedCase],
    added: Vec<u64>,
    max_question_id: u64,
    staging: &Path,
) -> Result<ReleaseManifest> {
    let mut counts = Counts {
        cases: cases.len() as u64,
        added: added.len() as u64,
        domains: BTreeMap::new(),
    };
    for case in cases {
        let domain = counts.domains.entry(case.category.clone()).or_default();
        domain.cases += 1;
        *domain
            .subcategories
            .entry(case.subcategory.clone())
            .or_insert(0) += 1;
    }
    let templates = cases
        .iter()
        .map(|c| {
            (
                c.provenance.template.clone(),
                c.provenance.template_blake3.clone(),
            )
        })
        .collect();
    let mut classifiers: BTreeSet<CheckSummary> = parent
        .map(|p| p.classifiers.iter().cloned().collect())
        .unwrap_or_default();
    classifiers.extend(cases.iter().flat_map(|c| c.checks.iter().cloned()));
    let mut runs: BTreeSet<String> = parent
        .map(|p| p.runs.iter().cloned().collect())
        .unwrap_or_default();
    runs.insert(run_id.to_owned());
    Ok(ReleaseManifest {
        format: release::FORMAT.to_owned(),
        dataset: project.settings().export.dataset_name.clone(),
        license: project.settings().export.license.clone(),
        version: version.to_string(),
        parent: parent.map(|p| format!("v{}", p.version)),
        created: release::timestamp()?,
        counts,
        added,
        max_question_id,
        runs: runs.into_iter().collect(),
        config_blake3: Config::digest_of(project.settings()).hex(),
        taxonomy_blake3: project.taxonomy.digest.hex(),
        templates,
        classifiers: classifiers.into_iter().collect(),
        files: file_entries(staging)?,
    })
}

/// blake3 and size of every file under `dir`, keyed by `/`-separated path.
pub fn file_entries(dir: &Path) -> Result<BTreeMap<String, FileEntry>> {
    let mut files = BTreeMap::new();
    for (name, path) in input_file::files_under(dir)? {
        if name == release::MANIFEST {
            continue;
        }
        let bytes = input_file::read_bytes(&path)?;
        files.insert(
            name,
            FileEntry {
                bytes: bytes.len() as u64,
                blake3: Digest::of(&bytes).hex(),
            },
        );
    }
    Ok(files)
}

/// The release as one parquet table, the image as a `{bytes, path}` struct
/// like Hugging Face's `Image` feature.
fn parquet_bytes(cases: &[ReleasedCase], images: &[Vec<u8>]) -> PolarsResult<Vec<u8>> {
    let text = |name: &str, field: fn(&ReleasedCase) -> &str| {
        Column::new(name.into(), cases.iter().map(field).collect::<Vec<&str>>())
    };
    let image_bytes = Series::new(
        "bytes".into(),
        images.iter().map(Vec::as_slice).collect::<Vec<&[u8]>>(),
    );
    let image_path = Series::new(
        "path".into(),
        cases
            .iter()
            .map(|c| c.image.as_str())
            .collect::<Vec<&str>>(),
    );
    let image = StructChunked::from_series(
        "image".into(),
        cases.len(),
        [image_bytes, image_path].iter(),
    )?;
    let mut frame = DataFrame::new(
        cases.len(),
        vec![
            Column::new(
                "question_id".into(),
                cases.iter().map(|c| c.question_id).collect::<Vec<u64>>(),
            ),
            image.into_series().into(),
            text("question", |c| &c.question),
            text("category", |c| &c.category),
            text("subcategory", |c| &c.subcategory),
            text("safety_warning", |c| &c.safety_warning),
            text("reference_answer", |c| &c.reference_answer),
            text("image_description", |c| &c.image_description),
            text("candidate_id", |c| &c.candidate_id),
            text("released_in", |c| &c.released_in),
        ],
    )?;
    let mut buffer = Vec::new();
    ParquetWriter::new(&mut buffer)
        .with_compression(ParquetCompression::Uncompressed)
        .finish(&mut frame)?;
    Ok(buffer)
}

fn write_changelog(curated: &Path) -> Result<()> {
    let releases = release::list(curated)?;
    if releases.is_empty() {
        return Ok(());
    }
    let mut entries = Vec::new();
    for release in &releases {
        entries.push((release.manifest()?, release.cases()?));
    }
    let path = curated.join(release::CHANGELOG);
    let text = release::render_changelog(&entries);
    if input_file::read_text(&path).ok().as_deref() != Some(text.as_str()) {
        atomic_file::write(&path, text.as_bytes())?;
    }
    Ok(())
}
