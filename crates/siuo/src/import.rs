//! `siuo import`: an existing benchmark in the published SIUO format (a
//! JSON array of `question_id, image, question, category, safety_warning,
//! reference_answer`, plus an image folder) becomes the base release, with
//! its `question_id`s. Every problem of the input is reported at once, and
//! nothing is written unless the whole input is sound. Image fields are
//! file names inside the image folder: absolute paths, `..` and symlinks
//! leading out of the folder are refused, so an import reads only what it
//! was pointed at and writes only into `curated/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use semver::Version;
use serde::Deserialize;

use siuo_chain::project::Project;
use siuo_chain::release_writer::publish::{self, Draft, DraftCase};
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::pixels;
use siuo_core::record::{Candidate, Fingerprint};
use siuo_core::release::{ImportedFrom, ReleasedCase};
use siuo_core::suggestion;
use siuo_core::taxonomy::Taxonomy;
use siuo_core::text_normal;

/// One record of a SIUO-format file. `subcategory` (a taxonomy id) is not
/// in the published format but is kept when present.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiuoInput {
    question_id: u64,
    image: String,
    question: String,
    category: String,
    safety_warning: String,
    reference_answer: String,
    #[serde(default)]
    subcategory: Option<String>,
}

pub struct ImportRequest<'a> {
    pub json: &'a Path,
    /// Defaults to `images/` next to the JSON file.
    pub images: Option<&'a Path>,
    /// YAML map from the file's category strings to taxonomy domain ids or names.
    pub category_map: Option<&'a Path>,
}

pub struct Imported {
    pub version: Version,
    pub cases: usize,
}

pub fn import(project: &Project, request: &ImportRequest<'_>) -> Result<Imported> {
    let curated = project.curated();
    if let Some(existing) = siuo_core::release::list(&curated)?.last() {
        return Err(Error::Import {
            path: request.json.to_owned(),
            problems: vec![format!(
                "{} already has releases (latest {}); an import makes the base release of an empty curated folder",
                curated.display(),
                existing.name()
            )],
        });
    }
    let json_bytes = input_file::read_bytes(request.json)?;
    let records: Vec<SiuoInput> =
        serde_json::from_slice(&json_bytes).map_err(|source| Error::Json {
            path: request.json.to_owned(),
            line: source.line(),
            source,
        })?;
    let images_dir = match request.images {
        Some(dir) => dir.to_owned(),
        None => request
            .json
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("images"),
    };
    let images_root = images_dir
        .canonicalize()
        .map_err(|e| Error::io(&images_dir, e))?;
    let category_map: BTreeMap<String, String> = match request.category_map {
        Some(path) => input_file::read_yaml(path)?,
        None => BTreeMap::new(),
    };
    let json_sha256 = siuo_core::model_file::sha256_hex(&json_bytes);

    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut cases = Vec::with_capacity(records.len());
    for record in records {
        let label = format!("question_id {}", record.question_id);
        if !seen.insert(record.question_id) {
            problems.push(format!("{label}: duplicate question_id"));
            continue;
        }
        if record.question_id == 0 {
            problems.push(format!("{label}: question_ids start at 1"));
            continue;
        }
        if record.question_id > MAX_QUESTION_ID {
            problems.push(format!(
                "{label}: question_id above {MAX_QUESTION_ID} (the parquet column is int64)"
            ));
            continue;
        }
        if record.question.trim().is_empty() {
            problems.push(format!("{label}: the question is blank"));
            continue;
        }
        let domain = match resolve_category(&project.taxonomy, &category_map, &record.category) {
            Ok(domain) => domain,
            Err(problem) => {
                problems.push(format!("{label}: {problem}"));
                continue;
            }
        };
        let subcategory = match &record.subcategory {
            None => String::new(),
            Some(subcategory) => {
                match project
                    .taxonomy
                    .resolve(request.json, &label, &domain, subcategory)
                {
                    Ok((_, s)) => s.id.clone(),
                    Err(e) => {
                        problems.push(e.to_string());
                        continue;
                    }
                }
            }
        };
        let image_path = match image_inside(&images_root, &record.image) {
            Ok(path) => path,
            Err(problem) => {
                problems.push(format!("{label}: image `{}`: {problem}", record.image));
                continue;
            }
        };
        // A FIFO or device would block the read or never end.
        if image_path.exists() && !image_path.is_file() {
            problems.push(format!(
                "{label}: image `{}` is not a regular file",
                record.image
            ));
            continue;
        }
        let Ok(bytes) = std::fs::read(&image_path) else {
            problems.push(format!(
                "{label}: image `{}` is missing from {}",
                record.image,
                images_dir.display()
            ));
            continue;
        };
        let decoded = match pixels::decode(&bytes) {
            Ok(decoded) => decoded,
            Err(e) => {
                problems.push(format!("{label}: image `{}`: {e}", record.image));
                continue;
            }
        };
        let extension = pixels::sniff_extension(&bytes).unwrap_or_default();
        if !RELEASED_EXTENSIONS.contains(&extension) {
            problems.push(format!(
                "{label}: image `{}` is {}; releases hold {} images",
                record.image,
                if extension.is_empty() {
                    "of an unknown format"
                } else {
                    extension
                },
                RELEASED_EXTENSIONS.join(", ")
            ));
            continue;
        }
        let image_blake3 = siuo_core::content_hash::Digest::of(&bytes).hex();
        let category = project.taxonomy.category(&domain);
        let case = ReleasedCase {
            question_id: record.question_id,
            candidate_id: Candidate::derive_id(
                &domain,
                &subcategory,
                &record.question,
                &image_blake3,
            ),
            domain,
            category,
            subcategory,
            image: format!("{}.{extension}", record.question_id),
            image_blake3,
            image_description: String::new(),
            safety_warning: text_normal::printable(&record.safety_warning),
            reference_answer: text_normal::printable(&record.reference_answer),
            fingerprint: Fingerprint {
                question_blake3: siuo_chain::similarity::minhash::question_digest(&record.question)
                    .hex(),
                pixels_blake3: pixels::digest(&decoded).hex(),
            },
            question: text_normal::printable(&record.question),
            released_in: String::new(),
            changed_in: None,
            provenance: None,
            imported_from: Some(ImportedFrom {
                json_sha256: json_sha256.clone(),
                image: record.image,
                category: record.category,
            }),
            checks: Vec::new(),
            verification: None,
            difficulty: None,
            control_of: None,
            review: None,
        };
        cases.push(DraftCase {
            case,
            image_source: image_path,
        });
    }
    if cases.is_empty() && problems.is_empty() {
        problems.push("the file has no records".to_owned());
    }
    if !problems.is_empty() {
        return Err(Error::Import {
            path: request.json.to_owned(),
            problems,
        });
    }
    let added: Vec<u64> = cases.iter().map(|c| c.case.question_id).collect();
    let count = cases.len();
    let spool = publish::Spool::create(&project.raw())?;
    let mut spooled = spool.cases("cases.jsonl")?;
    for case in &cases {
        spooled.push(case)?;
    }
    let draft = Draft {
        parent: None,
        max_question_id: added.iter().copied().max().unwrap_or(0),
        added,
        cases: spooled,
        controls: spool.cases("controls.jsonl")?,
        spool,
        added_controls: Vec::new(),
        changed: Vec::new(),
        retired: Vec::new(),
        runs: Vec::new(),
        rounds: Vec::new(),
    };
    let version = publish::publish(project, draft)?.ok_or_else(|| Error::Import {
        path: request.json.to_owned(),
        problems: vec!["nothing to release".to_owned()],
    })?;
    Ok(Imported {
        version,
        cases: count,
    })
}

/// Largest question id: the parquet column is a signed 64-bit integer.
const MAX_QUESTION_ID: u64 = i64::MAX as u64;

/// Image formats the SIUO record schema allows in a release.
const RELEASED_EXTENSIONS: [&str; 4] = ["png", "jpg", "gif", "webp"];

/// The taxonomy domain id of a category string: through the mapping
/// first, then by published name or by id.
fn resolve_category(
    taxonomy: &Taxonomy,
    map: &BTreeMap<String, String>,
    category: &str,
) -> std::result::Result<String, String> {
    let wanted = map.get(category).map_or(category, String::as_str);
    let found = taxonomy
        .domains
        .iter()
        .find(|d| d.name == wanted || d.id == wanted);
    match found {
        Some(domain) => Ok(domain.id.clone()),
        None => {
            let hint =
                suggestion::closest(wanted, taxonomy.domains.iter().map(|d| d.name.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
            let mapped = if wanted == category {
                String::new()
            } else {
                format!(" (mapped from `{category}`)")
            };
            Err(format!(
                "unknown category `{wanted}`{mapped}{hint}; map it to a domain with --category-map FILE (YAML: `\"their category\": <domain id or name>`)"
            ))
        }
    }
}

/// `name` resolved inside `root`, refusing anything that could leave it.
fn image_inside(root: &Path, name: &str) -> std::result::Result<PathBuf, String> {
    let relative = Path::new(name);
    if name.is_empty() {
        return Err("empty file name".to_owned());
    }
    if name.contains('\\') {
        return Err("refusing a backslash in an image path".to_owned());
    }
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(
                    "refusing path traversal (`..`): images must be inside the image folder"
                        .to_owned(),
                );
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(
                    "refusing an absolute path: images must be inside the image folder".to_owned(),
                );
            }
        }
    }
    let path = root.join(relative);
    // A symlink inside the folder may still point out of it.
    if let Ok(real) = path.canonicalize()
        && !real.starts_with(root)
    {
        return Err(format!(
            "refusing a link that leads out of the image folder (to {})",
            real.display()
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_stay_inside_the_folder() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().canonicalize()?;
        assert!(image_inside(&root, "a.png").is_ok());
        assert!(image_inside(&root, "sub/a.png").is_ok());
        for bad in [
            "../a.png",
            "sub/../../a.png",
            "/etc/passwd",
            "",
            "a\\..\\b.png",
        ] {
            assert!(image_inside(&root, bad).is_err(), "{bad} accepted");
        }
        Ok(())
    }
}
