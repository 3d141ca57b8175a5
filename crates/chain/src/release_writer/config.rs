//! The `export` section: what every release of the dataset is called and licensed as.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Name of the dataset, written into every manifest.
    #[serde(default = "default_dataset_name")]
    pub dataset_name: String,
    /// License of the released cases (an SPDX id).
    #[serde(default = "default_license")]
    pub license: String,
    /// Version of the first release; later ones follow semantic versioning.
    #[serde(default = "default_first_version")]
    pub first_version: String,
    /// A parquet shard is closed once its images exceed this many bytes
    /// (Hugging Face's viewer and loaders prefer shards of a few hundred MB).
    #[serde(default = "default_shard_image_bytes")]
    pub shard_image_bytes: u64,
}

fn default_shard_image_bytes() -> u64 {
    crate::release_writer::hf_parquet::SHARD_IMAGE_BYTES
}

fn default_dataset_name() -> String {
    "siuo-generated".into()
}
fn default_license() -> String {
    "CC-BY-4.0".into()
}
fn default_first_version() -> String {
    "1.0.0".into()
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            dataset_name: default_dataset_name(),
            license: default_license(),
            first_version: default_first_version(),
            shard_image_bytes: default_shard_image_bytes(),
        }
    }
}

impl ExportConfig {
    /// Problems of the `export` section.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.dataset_name.trim().is_empty() {
            problems.push("export.dataset_name must not be empty".to_owned());
        }
        if self.license.trim().is_empty()
            || self.license.chars().any(|c| c.is_whitespace() && c != ' ')
        {
            problems.push("export.license must be an SPDX license id such as CC-BY-4.0".to_owned());
        }
        if self.shard_image_bytes == 0 {
            problems.push("export.shard_image_bytes must be at least 1".to_owned());
        }
        if semver::Version::parse(&self.first_version).is_err() {
            problems.push(format!(
                "export.first_version `{}` is not a semantic version like 1.0.0",
                self.first_version
            ));
        }
        problems
    }
}
