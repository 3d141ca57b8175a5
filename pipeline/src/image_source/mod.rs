//! Image sources: where the images of image-first generation come from.
//! A source lists its images with their metadata and reads their original
//! bytes; it never decodes or alters them.

pub mod config;
pub mod library;

use crate::content_hash::Digest;
use crate::error::Result;
use config::ImageSourceConfig;

/// One image offered by a source, with the metadata a candidate records.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceImage {
    /// File name inside the source.
    pub file: String,
    pub caption: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where the image was taken from.
    pub source: String,
    pub license: String,
}

pub trait ImageSource {
    /// Stable id used in provenance, e.g. `library:starter`.
    fn id(&self) -> String;
    fn images(&self) -> &[SourceImage];
    /// Digest over metadata and image bytes: changes when any image changes.
    fn digest(&self) -> Digest;
    fn read(&self, image: &SourceImage) -> Result<Vec<u8>>;
}

/// Builds the configured source; `root` resolves relative paths.
pub fn build(config: &ImageSourceConfig, root: &std::path::Path) -> Result<Box<dyn ImageSource>> {
    match config {
        ImageSourceConfig::Library(library) => Ok(Box::new(library::ImageLibrary::load(
            &root.join(&library.path),
        )?)),
    }
}
