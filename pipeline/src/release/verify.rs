//! `siuo verify`: recompute every checksum a release's manifest records and
//! name each file that is missing, altered or not listed.

use serde::Serialize;

use super::{MANIFEST, Release};
use crate::content_hash::Digest;
use crate::error::{Error, Result};
use crate::input_file;

#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub version: String,
    pub files: usize,
    /// `blake3+sha256`, or `blake3` for releases older than siuo-release/2.
    pub checksums: String,
}

/// Checks one release; every problem is reported, not only the first.
/// `releases` (all of them) supply the digest of this release's manifest
/// that its child recorded, if it has one.
pub fn verify(release: &Release, releases: &[Release]) -> Result<Verified> {
    let manifest = release.manifest()?;
    let mut problems = Vec::new();
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
        let Ok(bytes) = std::fs::read(&path) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        let blake3 = Digest::of(&bytes).hex();
        if bytes.len() as u64 != entry.bytes || blake3 != entry.blake3 {
            problems.push(format!(
                "{name}: altered (blake3 {blake3}, {} bytes; manifest has {}, {} bytes)",
                bytes.len(),
                entry.blake3,
                entry.bytes
            ));
            continue;
        }
        match &entry.sha256 {
            Some(expected) => {
                let sha256 = crate::model_file::sha256_hex(&bytes);
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
