//! What an image source is: the images it offers and how they are read.

use siuo_core::content_hash::Digest;
use siuo_core::error::Result;

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
