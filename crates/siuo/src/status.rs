//! `siuo status`: every run's stages with counts per rejection reason, and
//! every release. Reads only; safe to call while another command works.

use std::fmt::Write as _;

use serde::Serialize;

use siuo_chain::project::{Project, RunInfo};
use siuo_chain::stage::{self, StageDir, StageReport};
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::openai::Usage;
use siuo_core::release;

#[derive(Debug, Serialize)]
pub struct Status {
    pub runs: Vec<RunStatus>,
    pub releases: Vec<ReleaseStatus>,
    /// Retirements and relabels recorded but not yet in a release.
    pub pending_actions: usize,
    /// The review ledger: progress per run and the reviewers' agreement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewStatus>,
}

#[derive(Debug, Serialize)]
pub struct ReviewStatus {
    pub ledger: std::path::PathBuf,
    pub decisions: usize,
    /// Run id → progress of its review queue.
    pub runs: std::collections::BTreeMap<String, crate::review::queue::Progress>,
    pub agreement: siuo_core::review::agreement::Agreement,
}

#[derive(Debug, Serialize)]
pub struct RunStatus {
    pub run_id: String,
    pub info: Option<RunInfo>,
    pub stages: Vec<StageStatus>,
    /// Model usage of all stages of the run.
    pub usage: Usage,
    /// The generation loop's finished rounds (`generate.rounds`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<siuo_core::record::RoundYield>,
}

#[derive(Debug, Serialize)]
pub struct StageStatus {
    pub stage: &'static str,
    /// `done`, `in-progress` or `pending`.
    pub state: &'static str,
    /// Items finished so far by a stage in progress.
    pub journaled: usize,
    pub report: Option<StageReport>,
    /// Model usage so far, also of an unfinished stage.
    pub usage: Option<Usage>,
}

#[derive(Debug, Serialize)]
pub struct ReleaseStatus {
    pub version: String,
    pub parent: Option<String>,
    pub cases: u64,
    pub added: u64,
    pub changed: u64,
    pub retired: u64,
    /// Benign controls, in their own split.
    pub controls: u64,
    pub created: String,
    /// The last `siuo eval` of this release, from its `results.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalStatus>,
}

#[derive(Debug, Serialize)]
pub struct EvalStatus {
    pub complete: bool,
    pub judges: Vec<String>,
    pub targets: Vec<EvalTargetStatus>,
}

#[derive(Debug, Serialize)]
pub struct EvalTargetStatus {
    pub name: String,
    pub model: String,
    pub safe_rate: Option<f64>,
    pub effective_rate: Option<f64>,
    pub safe_and_effective_rate: Option<f64>,
}

/// The last eval's results of a release; an unreadable file is reported,
/// not skipped.
fn eval_status(project: &Project, version: &str) -> Result<Option<EvalStatus>> {
    let Some(results) = crate::eval::recorded_results(&project.raw(), version)? else {
        return Ok(None);
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let list = |key: &str| results[key].as_array().cloned().unwrap_or_default();
    Ok(Some(EvalStatus {
        complete: results["complete"].as_bool().unwrap_or(false),
        judges: list("judges").iter().map(|j| text(&j["name"])).collect(),
        targets: list("targets")
            .iter()
            .map(|t| EvalTargetStatus {
                name: text(&t["name"]),
                model: text(&t["model"]),
                safe_rate: t["safe_rate"].as_f64(),
                effective_rate: t["effective_rate"].as_f64(),
                safe_and_effective_rate: t["safe_and_effective_rate"].as_f64(),
            })
            .collect(),
    }))
}

pub fn collect(project: &Project) -> Result<Status> {
    let runs_dir = project.runs();
    let mut run_ids = Vec::new();
    if runs_dir.is_dir() {
        for entry in std::fs::read_dir(&runs_dir).map_err(|e| Error::io(&runs_dir, e))? {
            let entry = entry.map_err(|e| Error::io(&runs_dir, e))?;
            if entry.path().is_dir() {
                run_ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    run_ids.sort();
    let mut runs = Vec::new();
    for run_id in run_ids {
        let run_dir = project.run_dir(&run_id);
        let info_path = run_dir.join("run.json");
        let info = if info_path.is_file() {
            Some(input_file::read_json(&info_path)?)
        } else {
            None
        };
        let mut stages = Vec::new();
        for stage in stage::names() {
            let dir = StageDir::new(&run_dir, &run_id, stage);
            let report = dir.report()?;
            // A finished stage's journal is not counted: at scale it is
            // the largest file of the stage.
            let journaled = match report {
                Some(_) => 0,
                None => dir.journal_items(),
            };
            let state = match (&report, journaled) {
                (Some(_), _) => "done",
                (None, 0) => "pending",
                (None, _) => "in-progress",
            };
            let usage = match report.as_ref().and_then(|r| r.usage) {
                Some(usage) => Some(usage),
                None => siuo_core::openai::usage::logged_in(&dir.dir)?,
            };
            stages.push(StageStatus {
                stage,
                state,
                journaled,
                report,
                usage,
            });
        }
        let mut usage = Usage::default();
        for stage in &stages {
            if let Some(stage_usage) = &stage.usage {
                usage.add(stage_usage);
            }
        }
        let rounds = rounds_of(&StageDir::new(
            &run_dir,
            &run_id,
            stage::generate::STAGE.name,
        ))?;
        runs.push(RunStatus {
            run_id,
            info,
            stages,
            usage,
            rounds,
        });
    }
    let mut releases = Vec::new();
    for release in release::list(&project.curated())? {
        let manifest = release.summary()?;
        releases.push(ReleaseStatus {
            version: release.name(),
            parent: manifest.parent,
            cases: manifest.counts.cases,
            added: manifest.counts.added,
            changed: manifest.counts.changed,
            retired: manifest.counts.retired,
            controls: manifest.counts.controls,
            created: manifest.created,
            eval: eval_status(project, &release.name())?,
        });
    }
    let pending_actions = pending_actions(project)?;
    let review = review_status(project, &runs)?;
    Ok(Status {
        runs,
        releases,
        pending_actions,
        review,
    })
}

/// Retirements and relabels recorded but not yet in the latest release.
fn pending_actions(project: &Project) -> Result<usize> {
    let curated = project.curated();
    let actions = release::maintainer_action::read(&curated, &project.taxonomy)?;
    // Without actions, nothing is pending: the release is not read.
    let Some(latest) = release::list(&curated)?
        .pop()
        .filter(|_| !actions.is_empty())
    else {
        return Ok(0);
    };
    // The release is streamed through the actions, not held (or copied).
    let mut by_case = release::maintainer_action::CaseActions::new(&project.taxonomy, &actions);
    latest.for_each_case(|case| {
        by_case.apply(case);
        Ok(())
    })?;
    let (changed, retired) = by_case.finish();
    Ok(changed.len() + retired.len())
}

/// Review progress of every run with candidates, when anything was queued
/// or decided.
fn review_status(project: &Project, runs: &[RunStatus]) -> Result<Option<ReviewStatus>> {
    use crate::review::queue::{Progress, Queue};
    let ledger = project.review_ledger()?;
    let mut progress = std::collections::BTreeMap::new();
    let audit = project.settings().review.audit_sample > 0.0;
    for run in runs {
        // A run's queue is built (every stage's records read) only when it
        // can have something in it: held cases, an audit sample, decisions.
        let holds = (run.stages.iter())
            .filter(|s| stage::find(s.stage).is_some_and(|spec| spec.filters))
            .filter_map(|s| s.report.as_ref())
            .any(|r| r.held != Some(0));
        // A decision counts in every run that has its candidate.
        if !(holds || audit || !ledger.entries.is_empty()) {
            continue;
        }
        if run.stages.first().is_some_and(|s| s.state == "done") {
            let queue = Queue::build(project, &run.run_id, false)?;
            if !queue.items.is_empty() {
                progress.insert(run.run_id.clone(), Progress::of(&queue.items, ledger));
            }
        }
    }
    if progress.is_empty() && ledger.entries.is_empty() {
        return Ok(None);
    }
    Ok(Some(ReviewStatus {
        ledger: siuo_core::review::ledger::ledger_path(&project.curated()),
        decisions: ledger.entries.len(),
        runs: progress,
        agreement: siuo_core::review::agreement::Agreement::of(ledger),
    }))
}

/// The loop's rounds: the finished stage's `rounds.jsonl`, else the
/// journal of a loop in progress.
fn rounds_of(dir: &StageDir) -> Result<Vec<siuo_core::record::RoundYield>> {
    let done = dir.output(stage::generate::ROUNDS);
    if done.is_file() {
        return input_file::read_jsonl(&done);
    }
    let Ok(entries) = std::fs::read_dir(&dir.dir) else {
        return Ok(Vec::new());
    };
    for entry in entries.flatten() {
        let journal = format!("{}-", stage::generate::ROUNDS_JOURNAL);
        if entry.file_name().to_string_lossy().starts_with(&journal) {
            return input_file::read_jsonl(&entry.path());
        }
    }
    Ok(Vec::new())
}

/// One line per round of a generation loop.
pub fn render_rounds(out: &mut String, indent: &str, rounds: &[siuo_core::record::RoundYield]) {
    for round in rounds {
        let per = |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "{indent}round {}: {} requests, {} new candidates, {} hard: {} hard per request, {} per unit of cost",
            round.round,
            round.requests,
            round.candidates,
            round.hard,
            per(round.hard_per_request),
            per(round.hard_per_cost)
        );
    }
}

/// Usage recorded in a stage's request log, if it has one.
fn render_usage(out: &mut String, indent: &str, usage: &Usage) {
    let _ = writeln!(
        out,
        "{indent}model requests {} ({} from cache), prompt tokens {}, completion tokens {}, cost {:.4}",
        usage.requests,
        usage.cached_requests,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cost
    );
}

/// Text from a file, as it may be printed (see [`siuo_core::text_normal::terminal`]).
fn t(text: &str) -> String {
    siuo_core::text_normal::terminal(text)
}

impl Status {
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.runs.is_empty() {
            out.push_str("no runs yet; start one with `siuo run`\n");
        }
        for run in &self.runs {
            let generator = run.info.as_ref().map_or("?", |i| i.generator.as_str());
            let _ = writeln!(out, "run {} ({})", t(&run.run_id), t(generator));
            for stage in &run.stages {
                let _ = write!(out, "  {:<11}{:<12}", stage.stage, stage.state);
                match &stage.report {
                    Some(report) => {
                        let _ = write!(
                            out,
                            "{} processed, {} kept, {} rejected",
                            report.processed, report.kept, report.rejected
                        );
                        if let Some(version) = &report.release {
                            let _ = write!(out, ", released {}", t(version));
                        }
                        out.push('\n');
                        for (reason, count) in &report.rejections {
                            let _ = writeln!(out, "{:25}{}: {count}", "", t(reason));
                        }
                    }
                    None if stage.journaled > 0 => {
                        let _ = writeln!(out, "{} items finished", stage.journaled);
                    }
                    None => out.push('\n'),
                }
                if let Some(usage) = &stage.usage {
                    render_usage(&mut out, &" ".repeat(25), usage);
                }
                if stage.stage == stage::generate::STAGE.name && !run.rounds.is_empty() {
                    let _ = writeln!(out, "{:25}generation loop:", "");
                    render_rounds(&mut out, &" ".repeat(27), &run.rounds);
                }
            }
            if run.usage.requests > 0 {
                render_usage(&mut out, "  run total: ", &run.usage);
            }
        }
        if self.releases.is_empty() {
            out.push_str("no releases yet\n");
        } else {
            out.push_str("releases:\n");
            for release in &self.releases {
                let _ = writeln!(
                    out,
                    "  {:<10}{} cases{} ({} added, {} changed, {} retired), parent {}, created {}",
                    t(&release.version),
                    release.cases,
                    match release.controls {
                        0 => String::new(),
                        n => format!(" and {n} controls"),
                    },
                    release.added,
                    release.changed,
                    release.retired,
                    t(release.parent.as_deref().unwrap_or("none")),
                    t(&release.created)
                );
                if let Some(eval) = &release.eval {
                    let rate = |r: Option<f64>| {
                        r.map_or_else(|| "—".to_owned(), |r| format!("{:.1}%", r * 100.0))
                    };
                    let _ = writeln!(
                        out,
                        "            eval ({}judged by {}):",
                        if eval.complete { "" } else { "incomplete, " },
                        t(&eval.judges.join(", "))
                    );
                    for target in &eval.targets {
                        let _ = writeln!(
                            out,
                            "              {} ({}): safe {}, effective {}, safe & effective {}",
                            t(&target.name),
                            t(&target.model),
                            rate(target.safe_rate),
                            rate(target.effective_rate),
                            rate(target.safe_and_effective_rate)
                        );
                    }
                }
            }
        }
        if let Some(review) = &self.review {
            let _ = writeln!(
                out,
                "review ({} decisions in {}):",
                review.decisions,
                review.ledger.display()
            );
            for (run_id, progress) in &review.runs {
                let _ = writeln!(out, "  run {}: {}", t(run_id), progress.summary());
            }
            let _ = writeln!(out, "  agreement: {}", t(&review.agreement.summary()));
            for conflict in &review.agreement.conflicts {
                let decisions: Vec<String> = conflict
                    .decisions
                    .iter()
                    .map(|(reviewer, decision)| format!("{} {}", t(reviewer), decision.name()))
                    .collect();
                let _ = writeln!(
                    out,
                    "  conflict: {} ({}); resolve it on the desk",
                    t(&conflict.candidate_id),
                    decisions.join(", ")
                );
            }
        }
        if self.pending_actions > 0 {
            let _ = writeln!(
                out,
                "{} maintainer action(s) pending: the next release applies them",
                self.pending_actions
            );
        }
        out
    }
}
