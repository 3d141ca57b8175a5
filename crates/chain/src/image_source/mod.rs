//! Image sources: where the images of image-first generation come from.
//! A source lists its images with their metadata and reads their original
//! bytes; it never decodes or alters them.

pub mod config;
pub mod library;
pub mod source;

pub use source::{ImageSource, SourceImage};

use config::ImageSourceConfig;
use siuo_core::error::Result;

/// Builds the configured source; `root` resolves relative paths.
pub fn build(config: &ImageSourceConfig, root: &std::path::Path) -> Result<Box<dyn ImageSource>> {
    match config {
        ImageSourceConfig::Library(library) => Ok(Box::new(library::ImageLibrary::load(
            &root.join(&library.path),
        )?)),
    }
}
