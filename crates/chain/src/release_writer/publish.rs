//! Writing a release: a complete snapshot (the parent's cases, minus the
//! retired, relabeled where asked, plus the added) becomes the next version.
//! The folder is built aside (`.staging-v<semver>/`) and renamed into
//! place, so a release is either whole or absent; an existing version is
//! never touched. Export and import both publish through here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use semver::Version;

use serde::{Deserialize, Serialize};

use super::{card, croissant, hf_parquet};
use crate::project::Project;
use siuo_core::atomic_file;
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::journal::{LineAt, LineJournal};
use siuo_core::progress::Progress;
use siuo_core::release::{
    CARD, CASES, CROISSANT, CaseChange, CheckSummary, Counts, FileEntry, IMAGES, MANIFEST, Release,
    ReleaseManifest, ReleasedCase, Retirement, SIUO_JSON, SiuoRecord, VerificationTally, changelog,
};

/// A case of the next release and where its image is now. `released_in`
/// of an added case and `changed_in` of a changed one are set on publishing.
#[derive(Serialize, Deserialize)]
pub struct DraftCase {
    pub case: ReleasedCase,
    pub image_source: PathBuf,
}

/// A folder for the files a draft is spooled to, removed when dropped. A
/// release of 100k cases is never held in memory: typed, a case takes
/// about 7 KB, and a draft holds the parent's cases and the run's.
pub struct Spool {
    dir: tempfile::TempDir,
}

impl Spool {
    /// A new spool folder in `raw`; the spools of a killed export (only one
    /// process at a time drafts a release: it holds the project lock) are
    /// removed first.
    pub fn create(raw: &Path) -> Result<Spool> {
        std::fs::create_dir_all(raw).map_err(|e| Error::io(raw, e))?;
        if let Ok(entries) = std::fs::read_dir(raw) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(SPOOL_PREFIX)
                {
                    std::fs::remove_dir_all(entry.path())
                        .map_err(|e| Error::io(entry.path(), e))?;
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(SPOOL_PREFIX)
            .tempdir_in(raw)
            .map_err(|e| Error::io(raw, e))?;
        Ok(Spool { dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cases(&self, name: &str) -> Result<CaseSpool> {
        Ok(CaseSpool {
            journal: LineJournal::open(&self.path(name), |_, _: DraftCase| Ok(()))?,
            at: Vec::new(),
        })
    }
}

const SPOOL_PREFIX: &str = ".spool-";

/// Draft cases spooled to a file as they are made, any order; publishing
/// reads them back one at a time, in question id order.
pub struct CaseSpool {
    journal: LineJournal<DraftCase>,
    /// Question id and line of every case.
    at: Vec<(u64, LineAt)>,
}

impl CaseSpool {
    pub fn push(&mut self, case: &DraftCase) -> Result<()> {
        let at = self.journal.append(case)?;
        self.at.push((case.case.question_id, at));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Calls `each` with every case, in question id order.
    pub fn for_each_in_order(
        &mut self,
        mut each: impl FnMut(DraftCase) -> Result<()>,
    ) -> Result<()> {
        self.at.sort_by_key(|(question_id, _)| *question_id);
        for (_, at) in &self.at {
            each(self.journal.read(*at)?)?;
        }
        Ok(())
    }
}

/// Everything the next release is made of.
pub struct Draft {
    pub parent: Option<Release>,
    /// Where `cases` and `controls` are spooled.
    pub spool: Spool,
    /// The whole snapshot.
    pub cases: CaseSpool,
    /// The benign controls of the snapshot's cases.
    pub controls: CaseSpool,
    /// Question ids of the controls this version adds.
    pub added_controls: Vec<u64>,
    pub added: Vec<u64>,
    pub changed: Vec<CaseChange>,
    pub retired: Vec<Retirement>,
    pub max_question_id: u64,
    /// Runs whose candidates this version adds.
    pub runs: Vec<String>,
    /// The yield of each round of the adding run's generation loop.
    pub rounds: Vec<siuo_core::record::RoundYield>,
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
    if manifest.format != siuo_core::release::FORMAT {
        let cause = format!(
            "patch: same cases, release format {} (was {})",
            siuo_core::release::FORMAT,
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
pub fn publish(project: &Project, mut draft: Draft) -> Result<Option<Version>> {
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
    let name = format!("v{version}");
    let marks = Marks {
        version: &name,
        // Sets, not lists: a first release of 100k cases adds them all.
        added: draft.added.iter().copied().collect(),
        added_controls: draft.added_controls.iter().copied().collect(),
        changed: draft.changed.iter().map(|c| c.question_id).collect(),
    };
    let progress = Progress::new(
        "export",
        draft.cases.len() + draft.controls.len() + 5,
        project.interactive,
    );

    // Each file is written in one pass over the cases, holding one case
    // (a parquet row group) at a time.
    let split = write_split(&staging, CASES, &mut draft.cases, &marks, &progress)?;
    let controls = match draft.controls.is_empty() {
        true => None,
        false => Some(write_split(
            &staging,
            siuo_core::release::CONTROLS,
            &mut draft.controls,
            &marks,
            &progress,
        )?),
    };

    progress.before_item();
    atomic_file::write_json_array(&staging.join(SIUO_JSON), |array| {
        input_file::for_each_jsonl(&staging.join(CASES), |case: ReleasedCase| {
            array.push(&SiuoRecord::from(&case))
        })
    })?;
    progress.item_done();

    progress.before_item();
    let (shards, parquet_bytes) =
        write_parquet_shards(project, &staging, "test", CASES, &split.image_sizes)?;
    let (control_shards, control_bytes) = match &controls {
        Some(controls) => write_parquet_shards(
            project,
            &staging,
            "control",
            siuo_core::release::CONTROLS,
            &controls.image_sizes,
        )?,
        None => (Vec::new(), 0),
    };
    progress.item_done();

    let created = siuo_core::release::timestamp(project.source_date_epoch.as_deref())?;
    let SplitWritten {
        mut counts,
        classifiers,
        verification,
        templates,
        facts: case_facts,
        ..
    } = split;
    counts.added = draft.added.len() as u64;
    counts.changed = draft.changed.len() as u64;
    counts.retired = draft.retired.len() as u64;
    counts.controls = controls.as_ref().map_or(0, |c| c.counts.cases);
    let classifiers = classifiers_of(parent_manifest.as_ref(), classifiers);
    let calibrations = crate::calibration_store::recorded_for_current_check(project)?;
    let verification = verification.finish();
    let jury_calibrations = crate::jury::calibration::recorded_for_current_jury(project)?;
    let facts = card::ReleaseFacts {
        dataset: &project.settings().export.dataset_name,
        license: &project.settings().export.license,
        version: &version,
        created: &created,
        taxonomy: &project.taxonomy,
        cases: &case_facts,
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
        format: siuo_core::release::FORMAT.to_owned(),
        dataset: project.settings().export.dataset_name.clone(),
        license: project.settings().export.license.clone(),
        version: version.to_string(),
        parent: draft.parent.as_ref().map(Release::name),
        parent_manifest_sha256: draft
            .parent
            .as_ref()
            .map(|p| input_file::read_bytes(&p.dir.join(MANIFEST)))
            .transpose()?
            .map(|bytes| siuo_core::model_file::sha256_hex(&bytes)),
        bump,
        created,
        counts,
        added: draft.added,
        changed: draft.changed,
        retired: draft.retired,
        max_question_id: draft.max_question_id,
        runs: runs.into_iter().collect(),
        config_blake3: siuo_core::content_hash::digest_of(project.settings()).hex(),
        taxonomy_blake3: project.taxonomy.digest.hex(),
        templates,
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

/// What publishing stamps on the cases: the version that adds or changes them.
struct Marks<'a> {
    version: &'a str,
    added: BTreeSet<u64>,
    added_controls: BTreeSet<u64>,
    changed: BTreeSet<u64>,
}

impl Marks<'_> {
    fn stamp(&self, case: &mut ReleasedCase) {
        let added = match case.control_of {
            Some(_) => &self.added_controls,
            None => &self.added,
        };
        if added.contains(&case.question_id) {
            self.version.clone_into(&mut case.released_in);
        }
        if case.control_of.is_none() && self.changed.contains(&case.question_id) {
            case.changed_in = Some(self.version.to_owned());
        }
    }
}

/// What writing one split (the cases or the controls) gathered of it.
struct SplitWritten {
    /// The size of each case's image, in question id order.
    image_sizes: Vec<u64>,
    counts: Counts,
    classifiers: BTreeSet<CheckSummary>,
    verification: VerificationTally,
    /// Template name → blake3, over every case.
    templates: BTreeMap<String, String>,
    facts: card::CaseFacts,
}

/// Writes a split's cases, in question id order, to `file` in `staging`
/// and their images to `images/`, one case at a time.
fn write_split(
    staging: &Path,
    file: &str,
    spool: &mut CaseSpool,
    marks: &Marks<'_>,
    progress: &Progress,
) -> Result<SplitWritten> {
    let mut written = SplitWritten {
        image_sizes: Vec::with_capacity(spool.len()),
        counts: Counts::default(),
        classifiers: BTreeSet::new(),
        verification: VerificationTally::default(),
        templates: BTreeMap::new(),
        facts: card::CaseFacts::default(),
    };
    let images = staging.join(IMAGES);
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    let path = staging.join(file);
    atomic_file::write_jsonl_with(&path, |lines| {
        spool.for_each_in_order(
            |DraftCase {
                 mut case,
                 image_source,
             }| {
                progress.before_item();
                marks.stamp(&mut case);
                written
                    .image_sizes
                    .push(put_image(&image_source, &images.join(&case.image))?);
                written.counts.add(&case);
                written.classifiers.extend(case.checks.iter().cloned());
                written.verification.add(&case);
                if let Some(p) = &case.provenance {
                    (written.templates).insert(p.template.clone(), p.template_blake3.clone());
                }
                written.facts.add(&case);
                lines.push(&case)?;
                progress.item_done();
                Ok(())
            },
        )
    })?;
    Ok(written)
}

/// Every classifier that passed a case of the release.
fn classifiers_of(
    parent: Option<&ReleaseManifest>,
    mut classifiers: BTreeSet<CheckSummary>,
) -> Vec<CheckSummary> {
    classifiers.extend(
        parent
            .into_iter()
            .flat_map(|p| p.classifiers.iter().cloned()),
    );
    classifiers.into_iter().collect()
}

/// Puts an image into the release; returns its size. An image of the
/// parent release (or of the image store) is hard-linked when the file
/// system allows: images are content-addressed and never written in
/// place, so a link is as good as a copy, and a release of 100k cases then
/// costs no 100k copies and syncs. Elsewhere (another file system), it is
/// copied.
fn put_image(source: &Path, target: &Path) -> Result<u64> {
    match std::fs::hard_link(source, target) {
        Ok(()) => Ok(std::fs::metadata(target)
            .map_err(|e| Error::io(target, e))?
            .len()),
        Err(_) => {
            let bytes = input_file::read_bytes(source)?;
            atomic_file::write(target, &bytes)?;
            Ok(bytes.len() as u64)
        }
    }
}

/// Writes the parquet shards of one split from its cases file in
/// `staging` (none for an empty control split); returns their names and
/// total size.
fn write_parquet_shards(
    project: &Project,
    staging: &Path,
    split: &str,
    cases_file: &str,
    image_sizes: &[u64],
) -> Result<(Vec<String>, u64)> {
    if image_sizes.is_empty() && split != "test" {
        return Ok((Vec::new(), 0));
    }
    let taxonomy = &project.taxonomy;
    let domain_names: Vec<String> = taxonomy.domains.iter().map(|d| d.name.clone()).collect();
    let bounds = hf_parquet::shard_bounds(image_sizes, project.settings().export.shard_image_bytes);
    let mut cases = input_file::JsonlReader::open(&staging.join(cases_file))?;
    let mut names = Vec::with_capacity(bounds.len());
    let mut total = 0;
    for (index, range) in bounds.iter().enumerate() {
        let name = hf_parquet::shard_name(split, index, bounds.len());
        let path = staging.join(&name);
        let parquet = |source: polars::error::PolarsError| Error::Parquet {
            path: path.clone(),
            message: source.to_string(),
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
            let mut rows = Vec::with_capacity(group.len());
            let mut images = Vec::with_capacity(group.len());
            for _ in group {
                let case: ReleasedCase = cases.next_record()?.ok_or_else(|| Error::Runtime {
                    message: format!("{} ended before its parquet shards", cases_file),
                })?;
                images.push(input_file::read_bytes(
                    &staging.join(IMAGES).join(&case.image),
                )?);
                rows.push(case);
            }
            writer
                .write(&rows, &images, &domain_index)
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
    let releases = siuo_core::release::list(curated)?;
    if releases.is_empty() {
        return Ok(());
    }
    let mut index = siuo_core::release::released_index(curated, raw)?;
    let mut entries = Vec::new();
    for release in &releases {
        let history: changelog::ReleaseHistory =
            input_file::read_json(&release.dir.join(MANIFEST))?;
        let added = index.added.remove(&release.name()).unwrap_or_default();
        entries.push((history, added));
    }
    let path = curated.join(siuo_core::release::CHANGELOG);
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
        let current = manifest(siuo_core::release::FORMAT);
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
