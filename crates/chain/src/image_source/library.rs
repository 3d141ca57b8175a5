//! A local image library: a folder of images plus a `library.yaml` sidecar
//! with caption, tags, source and license of every image.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ImageSource, SourceImage};
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::input_file;

pub const SIDECAR: &str = "library.yaml";
const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "gif", "webp", "bmp", "tif"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    name: String,
    images: Vec<SourceImage>,
}

pub struct ImageLibrary {
    dir: PathBuf,
    name: String,
    images: Vec<SourceImage>,
    digest: Digest,
}

impl ImageLibrary {
    pub fn load(dir: &Path) -> Result<Self> {
        let sidecar_path = dir.join(SIDECAR);
        let text = input_file::read_text(&sidecar_path)?;
        let sidecar: Sidecar = input_file::parse_yaml(&sidecar_path, &text)?;
        let invalid = |record: String, message: String| Error::InvalidRecord {
            path: sidecar_path.clone(),
            record,
            message,
        };
        let mut listed = BTreeSet::new();
        for image in &sidecar.images {
            let record = format!("image `{}`", image.file);
            if image.file.contains(['/', '\\']) || image.file.starts_with('.') {
                return Err(invalid(
                    record,
                    "file must be a plain file name in the library folder".into(),
                ));
            }
            if !listed.insert(image.file.clone()) {
                return Err(invalid(record, "listed twice".into()));
            }
            if !dir.join(&image.file).is_file() {
                return Err(invalid(
                    record,
                    format!("no such file in {}", dir.display()),
                ));
            }
            for (field, value) in [
                ("caption", &image.caption),
                ("source", &image.source),
                ("license", &image.license),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(record, format!("`{field}` must not be empty")));
                }
            }
        }
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let extension = name
                .rsplit_once('.')
                .map(|(_, e)| e.to_lowercase())
                .unwrap_or_default();
            if IMAGE_EXTENSIONS.contains(&extension.as_str()) && !listed.contains(&name) {
                return Err(invalid(
                    format!("image `{name}`"),
                    "is in the folder but has no entry (caption, source and license are required)"
                        .into(),
                ));
            }
        }
        let mut images = sidecar.images;
        images.sort_by(|a, b| a.file.cmp(&b.file));
        let mut hasher = ContentHasher::new("siuo.library.v1");
        hasher.str(&text);
        for image in &images {
            let bytes = input_file::read_bytes(&dir.join(&image.file))?;
            hasher.str(&image.file).str(&Digest::of(&bytes).hex());
        }
        Ok(ImageLibrary {
            dir: dir.to_owned(),
            name: sidecar.name,
            images,
            digest: hasher.finish(),
        })
    }
}

impl ImageSource for ImageLibrary {
    fn id(&self) -> String {
        format!("library:{}", self.name)
    }

    fn images(&self) -> &[SourceImage] {
        &self.images
    }

    fn digest(&self) -> Digest {
        self.digest
    }

    fn read(&self, image: &SourceImage) -> Result<Vec<u8>> {
        input_file::read_bytes(&self.dir.join(&image.file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_library_records_a_license_for_every_image() -> Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts/library/starter");
        let library = ImageLibrary::load(&dir)?;
        assert!(library.images().len() >= 9);
        assert!(
            library
                .images()
                .iter()
                .all(|i| !i.license.is_empty() && !i.source.is_empty())
        );
        Ok(())
    }

    #[test]
    fn unlisted_image_is_an_error_naming_it() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        std::fs::write(dir.path().join(SIDECAR), "name: t\nimages: []\n")
            .map_err(|e| Error::io("w", e))?;
        std::fs::write(dir.path().join("stray.png"), b"x").map_err(|e| Error::io("w", e))?;
        let message = ImageLibrary::load(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("image `stray.png`"), "{message}");
        Ok(())
    }
}
