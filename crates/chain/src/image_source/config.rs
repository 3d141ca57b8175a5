//! Where a generator's images come from (`generate.images`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where images come from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ImageSourceConfig {
    /// A local folder of images with a `library.yaml` sidecar (caption, tags, source, license).
    Library(LibraryConfig),
}

impl Default for ImageSourceConfig {
    fn default() -> Self {
        ImageSourceConfig::Library(LibraryConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    /// Folder holding the images and `library.yaml`.
    #[serde(default = "default_library")]
    pub path: PathBuf,
}

fn default_library() -> PathBuf {
    "prompts/library/starter".into()
}

impl Default for LibraryConfig {
    fn default() -> Self {
        LibraryConfig {
            path: default_library(),
        }
    }
}
