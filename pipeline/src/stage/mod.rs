//! The four stages and the on-disk bookkeeping they share.
//!
//! Each stage of a run lives in `raw/runs/<run>/<stage>/`. A stage is done
//! when its `report.json` exists with the key of its current inputs; until
//! then its journal holds the items already finished. A stage whose inputs
//! changed (another key) starts over; one whose key matches does no work.

pub mod check;
pub mod dedupe;
pub mod export;
pub mod generate;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::atomic_file;
use crate::content_hash::Digest;
use crate::error::{Error, Result};
use crate::input_file;
use crate::journal::Journal;
use crate::record::CandidateVerdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Generate,
    Check,
    Dedupe,
    Export,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Generate, Stage::Check, Stage::Dedupe, Stage::Export];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Generate => "generate",
            Stage::Check => "check",
            Stage::Dedupe => "dedupe",
            Stage::Export => "export",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a finished stage did; also what `--json` prints for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: Stage,
    pub run_id: String,
    /// Digest of everything the stage's output depends on.
    pub key: String,
    /// Items looked at.
    pub processed: u64,
    /// Items passed on to the next stage.
    pub kept: u64,
    pub rejected: u64,
    /// Rejected items per reason (an item may have several reasons).
    pub rejections: BTreeMap<String, u64>,
    /// For export: the version written, or `None` when there was nothing new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// One line for people.
    pub summary: String,
    /// True when this invocation found the stage already done and did no work.
    #[serde(default)]
    pub reused: bool,
    /// Tokens and cost of model requests, for stages that make them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::openai::Usage>,
}

/// `raw/runs/<run>/<stage>/`.
pub struct StageDir {
    pub stage: Stage,
    pub run_id: String,
    pub dir: PathBuf,
}

impl StageDir {
    pub fn new(run_dir: &Path, run_id: &str, stage: Stage) -> Self {
        StageDir {
            stage,
            run_id: run_id.to_owned(),
            dir: run_dir.join(stage.name()),
        }
    }

    pub fn report_path(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    pub fn report(&self) -> Result<Option<StageReport>> {
        let path = self.report_path();
        if !path.is_file() {
            return Ok(None);
        }
        input_file::read_json(&path).map(Some)
    }

    /// The report if the stage already finished with these inputs.
    pub fn finished(&self, key: &Digest) -> Result<Option<StageReport>> {
        Ok(self
            .report()?
            .filter(|r| r.key == key.hex())
            .map(|r| StageReport { reused: true, ..r }))
    }

    /// The journal of work done under `key`; work done under another key is
    /// stale and removed, along with the report it may have produced.
    pub fn journal<T: Serialize + DeserializeOwned>(&self, key: &Digest) -> Result<Journal<T>> {
        let current = format!("journal-{}.jsonl", key.short(16));
        if self.dir.is_dir() {
            for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
                let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name != current && (name.starts_with("journal-") || name == "report.json") {
                    std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
                }
            }
        }
        Journal::open(&self.dir.join(current))
    }

    /// Items journaled so far by an unfinished stage, for `siuo status`.
    pub fn journal_items(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("journal-"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
            .sum()
    }

    pub fn output(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Marks the stage done. Outputs must be written before this.
    pub fn finish(&self, report: &StageReport) -> Result<()> {
        atomic_file::write_json(&self.report_path(), report)
    }
}

/// The report of `needed`, which `stage` depends on, if it finished with `key`.
pub fn require(
    project: &crate::project::Project,
    run_id: &str,
    needed: Stage,
    key: &Digest,
    stage: Stage,
) -> Result<StageReport> {
    project
        .stage_dir(run_id, needed)
        .finished(key)?
        .ok_or_else(|| Error::StageNotReady {
            stage,
            needs: needed,
            run: run_id.to_owned(),
        })
}

/// File of a stage that writes one verdict per candidate.
pub const VERDICTS: &str = "verdicts.jsonl";

/// Ends a stage that writes one verdict per candidate: keeps the journaled
/// verdicts of the current `candidates`, writes them sorted by candidate id,
/// then the report. `summary` gets (kept, processed).
pub fn finish_with_verdicts<V: CandidateVerdict + Serialize>(
    stage_dir: &StageDir,
    key: &Digest,
    journaled: Vec<V>,
    candidates: &BTreeSet<&str>,
    summary: impl FnOnce(u64, u64) -> String,
) -> Result<StageReport> {
    let mut verdicts: Vec<V> = journaled
        .into_iter()
        .filter(|v| candidates.contains(v.candidate_id()))
        .collect();
    verdicts.sort_by(|a, b| a.candidate_id().cmp(b.candidate_id()));
    atomic_file::write_jsonl(&stage_dir.output(VERDICTS), &verdicts)?;
    let (rejected, rejections) = count_reasons(verdicts.iter().map(|v| v.decision().reasons()));
    let processed = verdicts.len() as u64;
    let kept = processed - rejected;
    let report = StageReport {
        stage: stage_dir.stage,
        run_id: stage_dir.run_id.clone(),
        key: key.hex(),
        processed,
        kept,
        rejected,
        rejections,
        release: None,
        summary: summary(kept, processed),
        reused: false,
        usage: None,
    };
    stage_dir.finish(&report)?;
    Ok(report)
}

/// Counts reasons of rejected items for a report.
pub fn count_reasons<'a>(
    reasons: impl IntoIterator<Item = &'a [String]>,
) -> (u64, BTreeMap<String, u64>) {
    let mut rejected = 0;
    let mut by_reason = BTreeMap::new();
    for item_reasons in reasons {
        if item_reasons.is_empty() {
            continue;
        }
        rejected += 1;
        for reason in item_reasons {
            *by_reason.entry(reason.clone()).or_insert(0) += 1;
        }
    }
    (rejected, by_reason)
}
