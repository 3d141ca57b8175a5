//! `siuo verify-release`: recompute every checksum a release's manifest records and
//! name each file that is missing, altered or not listed.

use serde::Serialize;

use super::{FileEntry, MANIFEST, Release};
use crate::error::{Error, Result};
use crate::input_file;

#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub version: String,
    pub files: usize,
    /// `blake3+sha256`, or `blake3` for releases older than siuo-release/2.
    pub checksums: String,
}

/// Checks one release and the chain of releases it rests on; every problem
/// is reported, not only the first. `releases` are all of them.
pub fn verify(release: &Release, releases: &[Release]) -> Result<Verified> {
    let manifest = release.manifest()?;
    let mut problems = chain_problems(release, releases)?;
    // Only the newest manifest rests on git; every older one is pinned by
    // its child.
    for child in releases {
        let child_manifest = child.manifest()?;
        if child_manifest.parent.as_deref() != Some(release.name().as_str()) {
            continue;
        }
        let Some(expected) = child_manifest.parent_manifest_sha256 else {
            continue;
        };
        let actual =
            crate::model_file::sha256_hex(&input_file::read_bytes(&release.dir.join(MANIFEST))?);
        if actual != expected {
            problems.push(format!(
                "{MANIFEST}: altered (sha256 {actual}; {} recorded {expected})",
                child.name()
            ));
        }
    }
    let mut with_sha256 = true;
    for (name, entry) in &manifest.files {
        let path = release.dir.join(name);
        let Ok(actual) = FileEntry::of_file(&path) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if actual.bytes != entry.bytes || actual.blake3 != entry.blake3 {
            problems.push(format!(
                "{name}: altered (blake3 {}, {} bytes; manifest has {}, {} bytes)",
                actual.blake3, actual.bytes, entry.blake3, entry.bytes
            ));
            continue;
        }
        match &entry.sha256 {
            Some(expected) => {
                let sha256 = actual.sha256.unwrap_or_default();
                if &sha256 != expected {
                    problems.push(format!(
                        "{name}: altered (sha256 {sha256}; manifest has {expected})"
                    ));
                }
            }
            None => with_sha256 = false,
        }
    }
    for (name, _) in input_file::files_under(&release.dir)? {
        if name != MANIFEST && !manifest.files.contains_key(&name) {
            problems.push(format!("{name}: not listed in the manifest"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::ReleaseAltered {
            path: release.dir.clone(),
            problems,
        });
    }
    Ok(Verified {
        version: release.name(),
        files: manifest.files.len(),
        checksums: if with_sha256 {
            "blake3+sha256"
        } else {
            "blake3"
        }
        .to_owned(),
    })
}

/// Problems of the chain under `release`: every ancestor must exist, and
/// its manifest must have the sha256 its child pinned. A release is only as
/// sound as what it was built on.
pub fn chain_problems(release: &Release, releases: &[Release]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut current = release.clone();
    for _ in 0..=releases.len() {
        let manifest = current.manifest()?;
        let Some(parent_name) = manifest.parent else {
            return Ok(problems);
        };
        let Some(parent) = releases.iter().find(|r| r.name() == parent_name) else {
            problems.push(format!(
                "parent release {parent_name} of {} is missing (or has no {MANIFEST})",
                current.name()
            ));
            return Ok(problems);
        };
        if let Some(pinned) = &manifest.parent_manifest_sha256 {
            let actual =
                crate::model_file::sha256_hex(&input_file::read_bytes(&parent.dir.join(MANIFEST))?);
            if &actual != pinned {
                problems.push(format!(
                    "{parent_name}/{MANIFEST}: altered (sha256 {actual}; {} pinned {pinned})",
                    current.name()
                ));
            }
        }
        current = parent.clone();
    }
    problems.push(format!("the parents of {} form a cycle", release.name()));
    Ok(problems)
}

/// Folders of `curated` named like a release that are not one: their
/// manifest is missing, so nothing in them can be checked.
fn unverifiable(curated: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    if !curated.is_dir() {
        return Ok(found);
    }
    for entry in std::fs::read_dir(curated).map_err(|e| Error::io(curated, e))? {
        let entry = entry.map_err(|e| Error::io(curated, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let versioned = name
            .strip_prefix('v')
            .is_some_and(|v| semver::Version::parse(v).is_ok());
        if versioned && entry.path().is_dir() && !entry.path().join(MANIFEST).is_file() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// An error for the first folder of `curated` named like a release that
/// has no manifest: nothing in it can be checked, and it is not "no release".
pub fn every_release_has_a_manifest(curated: &std::path::Path) -> Result<()> {
    match unverifiable(curated)?.into_iter().next() {
        None => Ok(()),
        Some(dir) => Err(Error::ReleaseAltered {
            path: dir,
            problems: vec![format!(
                "{MANIFEST}: missing; restore it from version control"
            )],
        }),
    }
}

/// What export checks before it builds on the latest release: no release
/// folder lost its manifest, and the latest release with its whole chain
/// verifies. Building on an altered release would publish the alteration.
pub fn before_building_on(curated: &std::path::Path, releases: &[Release]) -> Result<()> {
    every_release_has_a_manifest(curated)?;
    if let Some(latest) = releases.last() {
        verify(latest, releases)?;
    }
    Ok(())
}
