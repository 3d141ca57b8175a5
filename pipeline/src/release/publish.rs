//! Writing a release: a complete snapshot (the parent's cases, minus the
//! retired, relabeled where asked, plus the added) becomes the next version.
//! The folder is built aside (`.staging-v<semver>/`) and renamed into
//! place, so a release is either whole or absent; an existing version is
//! never touched. Export and import both publish through here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use semver::Version;

use super::{
    CARD, CASES, CROISSANT, CaseChange, CheckSummary, Counts, FileEntry, IMAGES, MANIFEST, Release,
    ReleaseManifest, ReleasedCase, Retirement, SIUO_JSON, SiuoRecord, card, changelog, croissant,
    hf_parquet,
};
use crate::atomic_file;
use crate::error::{Error, Result};
use crate::input_file;
use crate::progress::Progress;
use crate::project::Project;

/// A case of the next release and where its image is now. `released_in`
/// of an added case and `changed_in` of a changed one are set on publishing.
pub struct DraftCase {
    pub case: ReleasedCase,
    pub image_source: PathBuf,
}

/// Everything the next release is made of.
pub struct Draft {
    pub parent: Option<Release>,
    /// The whole snapshot, any order.
    pub cases: Vec<DraftCase>,
    /// The benign controls of the snapshot's cases, any order.
    pub controls: Vec<DraftCase>,
    /// Question ids of the controls this version adds.
    pub added_controls: Vec<u64>,
    pub added: Vec<u64>,
    pub changed: Vec<CaseChange>,
    pub retired: Vec<Retirement>,
    pub max_question_id: u64,
    /// Runs whose candidates this version adds.
    pub runs: Vec<String>,
    /// The yield of each round of the adding run's generation loop.
    pub rounds: Vec<crate::record::RoundYield>,
}

/// The version a draft gets: the first version (if it has cases); major when a case changed
/// or was retired; minor when cases were only added; patch when the cases
/// are the parent's but the release format changed; `None` when nothing
/// would change.
pub fn next_version(
    first_version: &Version,
    parent: Option<(&Version, &ReleaseManifest)>,
    added: usize,
    changed: usize,
    retired: usize,
) -> Option<(Version, String)> {
    let Some((version, manifest)) = parent else {
        return (added > 0).then(|| (first_version.clone(), "first release".to_owned()));
    };
    if changed + retired > 0 {
        let cause = format!("major: {changed} changed, {retired} retired, {added} added");
        return Some((Version::new(version.major + 1, 0, 0), cause));
    }
    if added > 0 {
        let cause = format!("minor: {added} added, none changed or retired");
        return Some((Version::new(version.major, version.minor + 1, 0), cause));
    }
    if manifest.format != super::FORMAT {
        let cause = format!(
            "patch: same cases, release format {} (was {})",
            super::FORMAT,
            manifest.format
        );
        return Some((
            Version::new(version.major, version.minor, version.patch + 1),
            cause,
        ));
    }
    None
}

/// Publishes the draft; `None` when it would change nothing.
pub fn publish(project: &Project, draft: Draft) -> Result<Option<Version>> {
    let curated = project.curated();
    remove_unfinished_releases(&curated)?;
    let parent_manifest = draft.parent.as_ref().map(Release::manifest).transpose()?;
    let first_version =
        Version::parse(&project.settings().export.first_version).map_err(|e| Error::Config {
            path: project.config.display_name().into(),
            problems: vec![format!("export.first_version: {e}")],
        })?;
    let parent = draft.parent.as_ref().zip(parent_manifest.as_ref());
    let Some((version, bump)) = next_version(
        &first_version,
        parent.map(|(r, m)| (&r.version, m)),
        draft.added.len() + draft.added_controls.len(),
        draft.changed.len(),
        draft.retired.len(),
    ) else {
        return Ok(None);
    };
    let final_dir = curated.join(format!("v{version}"));
    if final_dir.exists() {
        return Err(Error::ReleaseExists { path: final_dir });
    }
    let staging = curated.join(format!(".staging-v{version}"));
    let mut cases = draft.cases;
    cases.sort_by_key(|c| c.case.question_id);
    let mut controls = draft.controls;
    controls.sort_by_key(|c| c.case.question_id);
    let name = format!("v{version}");
    // Sets, not lists: a first release of 100k cases adds them all.
    let added_controls: BTreeSet<u64> = draft.added_controls.iter().copied().collect();
    for DraftCase { case, .. } in &mut controls {
        if added_controls.contains(&case.question_id) {
            case.released_in.clone_from(&name);
        }
    }
    let added: BTreeSet<u64> = draft.added.iter().copied().collect();
    let changed: BTreeSet<u64> = draft.changed.iter().map(|c| c.question_id).collect();
    for DraftCase { case, .. } in &mut cases {
        if added.contains(&case.question_id) {
            case.released_in.clone_from(&name);
        }
        if changed.contains(&case.question_id) {
            case.changed_in = Some(name.clone());
        }
    }
    let progress = Progress::new(
        "export",
        cases.len() + controls.len() + 5,
        project.interactive,
    );

    let image_sizes = copy_images(&staging, &cases, &progress)?;
    let control_image_sizes = copy_images(&staging, &controls, &progress)?;
    let cases: Vec<ReleasedCase> = cases.into_iter().map(|c| c.case).collect();
    let controls: Vec<ReleasedCase> = controls.into_iter().map(|c| c.case).collect();
    if !controls.is_empty() {
        atomic_file::write_jsonl(&staging.join(super::CONTROLS), &controls)?;
    }

    progress.before_item();
    atomic_file::write_jsonl(&staging.join(CASES), &cases)?;
    atomic_file::write_json_array(&staging.join(SIUO_JSON), cases.iter().map(SiuoRecord::from))?;
    progress.item_done();

    progress.before_item();
    let (shards, parquet_bytes) =
        write_parquet_shards(project, &staging, "test", &cases, &image_sizes)?;
    let (control_shards, control_bytes) = write_parquet_shards(
        project,
        &staging,
        "control",
        &controls,
        &control_image_sizes,
    )?;
    progress.item_done();

    let created = super::timestamp(project.source_date_epoch.as_deref())?;
    let mut counts = Counts::of(&cases);
    counts.added = draft.added.len() as u64;
    counts.changed = draft.changed.len() as u64;
    counts.retired = draft.retired.len() as u64;
    counts.controls = controls.len() as u64;
    let classifiers = classifiers_of(parent_manifest.as_ref(), &cases);
    let calibrations = crate::calibration_report::recorded_for_current_check(project)?;
    let verification = super::VerificationSummary::of(&cases);
    let jury_calibrations = crate::jury::calibration::recorded_for_current_jury(project)?;
    let facts = card::ReleaseFacts {
        dataset: &project.settings().export.dataset_name,
        license: &project.settings().export.license,
        version: &version,
        created: &created,
        taxonomy: &project.taxonomy,
        cases: &cases,
        counts: &counts,
        shards: &shards,
        parquet_bytes,
        rounds: &draft.rounds,
        control_shards: &control_shards,
        control_parquet_bytes: control_bytes,
        classifiers: &classifiers,
        settings: project.settings(),
        calibrations: &calibrations,
        verification: &verification,
        jury_calibrations: &jury_calibrations,
        reviews: project.review_ledger()?,
    };
    progress.before_item();
    atomic_file::write(&staging.join(CARD), card::render(&facts).as_bytes())?;
    progress.item_done();

    progress.before_item();
    let mut files = file_entries(&staging)?;
    let croissant = croissant::render(&facts, &files);
    atomic_file::write_json(&staging.join(CROISSANT), &croissant)?;
    let croissant_path = staging.join(CROISSANT);
    let entry = FileEntry::of_file(&croissant_path).map_err(|e| Error::io(&croissant_path, e))?;
    files.insert(CROISSANT.to_owned(), entry);
    progress.item_done();

    progress.before_item();
    let mut runs: BTreeSet<String> = parent_manifest
        .as_ref()
        .map(|p| p.runs.iter().cloned().collect())
        .unwrap_or_default();
    runs.extend(draft.runs);
    let manifest = ReleaseManifest {
        format: super::FORMAT.to_owned(),
        dataset: project.settings().export.dataset_name.clone(),
        license: project.settings().export.license.clone(),
        version: version.to_string(),
        parent: draft.parent.as_ref().map(Release::name),
        parent_manifest_sha256: draft
            .parent
            .as_ref()
            .map(|p| input_file::read_bytes(&p.dir.join(MANIFEST)))
            .transpose()?
            .map(|bytes| crate::model_file::sha256_hex(&bytes)),
        bump,
        created,
        counts,
        added: draft.added,
        changed: draft.changed,
        retired: draft.retired,
        max_question_id: draft.max_question_id,
        runs: runs.into_iter().collect(),
        config_blake3: crate::content_hash::digest_of(project.settings()).hex(),
        taxonomy_blake3: project.taxonomy.digest.hex(),
        templates: cases
            .iter()
            .filter_map(|c| c.provenance.as_ref())
            .map(|p| (p.template.clone(), p.template_blake3.clone()))
            .collect(),
        classifiers,
        verification: Some(verification),
        files,
    };
    atomic_file::write_json(&staging.join(MANIFEST), &manifest)?;
    progress.item_done();
    progress.finish();
    std::fs::rename(&staging, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    write_changelog(&curated, &project.raw())?;
    Ok(Some(version))
}

/// Every classifier that passed a case of the release.
fn classifiers_of(parent: Option<&ReleaseManifest>, cases: &[ReleasedCase]) -> Vec<CheckSummary> {
    let mut classifiers: BTreeSet<CheckSummary> = parent
        .map(|p| p.classifiers.iter().cloned().collect())
        .unwrap_or_default();
    classifiers.extend(cases.iter().flat_map(|c| c.checks.iter().cloned()));
    classifiers.into_iter().collect()
}

/// Puts the images of `cases` into the release; returns their sizes. An
/// image of the parent release (or of the image store) is hard-linked when
/// the file system allows: images are content-addressed and never written
/// in place, so a link is as good as a copy, and a release of 100k cases
/// then costs no 100k copies and syncs. Elsewhere (another file system),
/// it is copied.
fn copy_images(staging: &Path, cases: &[DraftCase], progress: &Progress) -> Result<Vec<u64>> {
    let mut image_sizes = Vec::with_capacity(cases.len());
    let dir = staging.join(IMAGES);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for draft_case in cases {
        progress.before_item();
        let target = dir.join(&draft_case.case.image);
        let source = &draft_case.image_source;
        let size = match std::fs::hard_link(source, &target) {
            Ok(()) => std::fs::metadata(&target)
                .map_err(|e| Error::io(&target, e))?
                .len(),
            Err(_) => {
                let bytes = input_file::read_bytes(source)?;
                atomic_file::write(&target, &bytes)?;
                bytes.len() as u64
            }
        };
        image_sizes.push(size);
        progress.item_done();
    }
    Ok(image_sizes)
}

/// Writes the parquet shards of one split (none for an empty control
/// split); returns their names and total size.
fn write_parquet_shards(
    project: &Project,
    staging: &Path,
    split: &str,
    cases: &[ReleasedCase],
    image_sizes: &[u64],
) -> Result<(Vec<String>, u64)> {
    if cases.is_empty() && split != "test" {
        return Ok((Vec::new(), 0));
    }
    let taxonomy = &project.taxonomy;
    let domain_names: Vec<String> = taxonomy.domains.iter().map(|d| d.name.clone()).collect();
    let bounds = hf_parquet::shard_bounds(image_sizes, project.settings().export.shard_image_bytes);
    let mut names = Vec::with_capacity(bounds.len());
    let mut total = 0;
    for (index, range) in bounds.iter().enumerate() {
        let name = hf_parquet::shard_name(split, index, bounds.len());
        let path = staging.join(&name);
        let shard = &cases[range.clone()];
        let parquet = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut writer = hf_parquet::ShardWriter::new(&file, &domain_names);
        let domain_index = |case: &ReleasedCase| taxonomy.domain_index(&case.domain) as i64;
        let groups = hf_parquet::shard_bounds(
            &image_sizes[range.clone()],
            hf_parquet::ROW_GROUP_IMAGE_BYTES,
        );
        for group in groups {
            let rows = &shard[group];
            let mut images = Vec::with_capacity(rows.len());
            for case in rows {
                images.push(input_file::read_bytes(
                    &staging.join(IMAGES).join(&case.image),
                )?);
            }
            writer
                .write(rows, &images, &domain_index)
                .map_err(parquet)?;
        }
        total += writer.finish().map_err(parquet)?;
        // The release folder is renamed into place once complete: its
        // files must be on disk by then.
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        names.push(name);
    }
    Ok((names, total))
}

/// Leftovers of a release killed while building its folder.
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

/// Size, blake3 and sha256 of every file under `dir` but the manifest,
/// keyed by `/`-separated path.
pub fn file_entries(dir: &Path) -> Result<BTreeMap<String, FileEntry>> {
    let mut files = BTreeMap::new();
    for (name, path) in input_file::files_under(dir)? {
        if name == MANIFEST {
            continue;
        }
        let entry = FileEntry::of_file(&path).map_err(|e| Error::io(&path, e))?;
        files.insert(name, entry);
    }
    Ok(files)
}

/// Rewrites `curated/CHANGELOG.md` from every release when it differs.
pub fn write_changelog(curated: &Path, raw: &Path) -> Result<()> {
    let releases = super::list(curated)?;
    if releases.is_empty() {
        return Ok(());
    }
    let mut index = super::released_index(curated, raw)?;
    let mut entries = Vec::new();
    for release in &releases {
        let history: changelog::ReleaseHistory =
            input_file::read_json(&release.dir.join(MANIFEST))?;
        let added = index.added.remove(&release.name()).unwrap_or_default();
        entries.push((history, added));
    }
    let path = curated.join(super::CHANGELOG);
    let text = changelog::render(&entries);
    if input_file::read_text(&path).ok().as_deref() != Some(text.as_str()) {
        atomic_file::write(&path, text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(format: &str) -> ReleaseManifest {
        ReleaseManifest {
            format: format.to_owned(),
            dataset: String::new(),
            license: String::new(),
            version: "1.2.3".to_owned(),
            parent: None,
            parent_manifest_sha256: None,
            bump: String::new(),
            created: String::new(),
            counts: Counts::default(),
            added: Vec::new(),
            changed: Vec::new(),
            retired: Vec::new(),
            max_question_id: 0,
            runs: Vec::new(),
            config_blake3: String::new(),
            taxonomy_blake3: String::new(),
            templates: BTreeMap::new(),
            classifiers: Vec::new(),
            verification: None,
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn semantic_version_rules() {
        let first = Version::new(1, 0, 0);
        let parent = Version::new(1, 2, 3);
        let current = manifest(super::super::FORMAT);
        let old = manifest("siuo-release/1");
        let next = |m: &ReleaseManifest, a, c, r| {
            next_version(&first, Some((&parent, m)), a, c, r).map(|(v, _)| v.to_string())
        };
        assert_eq!(
            next_version(&first, None, 3, 0, 0).map(|(v, _)| v),
            Some(first.clone())
        );
        assert_eq!(next_version(&first, None, 0, 0, 0), None);
        assert_eq!(next(&current, 5, 0, 0).as_deref(), Some("1.3.0"));
        assert_eq!(next(&current, 5, 1, 0).as_deref(), Some("2.0.0"));
        assert_eq!(next(&current, 0, 0, 1).as_deref(), Some("2.0.0"));
        assert_eq!(next(&old, 0, 0, 0).as_deref(), Some("1.2.4"));
        assert_eq!(next(&old, 2, 0, 0).as_deref(), Some("1.3.0"));
        assert_eq!(next(&current, 0, 0, 0), None);
    }
}
