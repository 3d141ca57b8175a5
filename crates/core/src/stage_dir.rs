//! The on-disk bookkeeping of one stage of one run, `raw/runs/<run>/<stage>/`:
//! its report (the stage is done when the report has the key of its current
//! inputs) and its journal of finished items. It knows no stage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::atomic_file;
use crate::content_hash::Digest;
use crate::error::{Error, Result};
use crate::input_file;
use crate::journal::{Journal, VerdictJournal, WorkItem};
use crate::record::CandidateVerdict;
use crate::shard::Shard;

/// What a finished stage did; also what `--json` prints for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: String,
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
    /// Candidates a filtering stage held for human review; `None` in
    /// reports written before siuo counted them (and of other stages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
    /// Tokens and cost of model requests, for stages that make them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::openai::Usage>,
}

/// `raw/runs/<run>/<stage>/`, as one shard of the stage sees it.
pub struct StageDir {
    pub stage: &'static str,
    pub run_id: String,
    pub dir: PathBuf,
    /// The shard whose files this is (`--shard I/N`); `None` for the
    /// unsharded stage, which reads every shard's files as done work.
    pub shard: Option<Shard>,
}

impl StageDir {
    pub fn new(run_dir: &Path, run_id: &str, stage: &'static str) -> Self {
        StageDir {
            stage,
            run_id: run_id.to_owned(),
            dir: run_dir.join(stage),
            shard: None,
        }
    }

    /// The same folder as `shard` works in it.
    pub fn of_shard(self, shard: Option<Shard>) -> Self {
        StageDir { shard, ..self }
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

    /// The journal of work done under `key`, `journal-<key>.jsonl`, or
    /// this shard's `journal-<key>.shard-I-of-N.jsonl` (see
    /// [`crate::shard`]); an unsharded stage also reads every shard's file
    /// of its key, as work done, each entry checked (see
    /// [`Journal::open_merged`]). Work done under another key is stale and
    /// removed, along with the report it may have produced.
    pub fn journal<T: Serialize + DeserializeOwned + WorkItem>(
        &self,
        key: &Digest,
    ) -> Result<Journal<T>> {
        let (own, shards) = self.journal_files("journal", key, true)?;
        Journal::open_merged(&own, &shards)
    }

    /// Another journal of the stage, `<prefix>-<key>.jsonl`, of a step
    /// that is never sharded: like the main one, what was journaled under
    /// another key is stale and removed.
    pub fn side_journal<T: Serialize + DeserializeOwned>(
        &self,
        prefix: &str,
        key: &Digest,
    ) -> Result<Journal<T>> {
        let (own, _) = self.journal_files(prefix, key, false)?;
        Journal::open(&own)
    }

    /// The main journal of a stage that writes one verdict per candidate,
    /// holding only which candidates are done (see [`VerdictJournal`]).
    pub fn verdict_journal<V: CandidateVerdict + Serialize + DeserializeOwned>(
        &self,
        key: &Digest,
    ) -> Result<VerdictJournal<V>> {
        let (own, shards) = self.journal_files("journal", key, true)?;
        VerdictJournal::open(&own, &shards)
    }

    /// This process's journal file of `prefix` and `key`, and the other
    /// shards' files it reads (none for a shard), after removing the files
    /// of other keys.
    fn journal_files(
        &self,
        prefix: &str,
        key: &Digest,
        with_report: bool,
    ) -> Result<(PathBuf, Vec<PathBuf>)> {
        let keyed = format!("{prefix}-{}", key.short(16));
        let own = crate::shard::own_file(&self.dir.join(format!("{keyed}.jsonl")), self.shard);
        let stale_prefix = format!("{prefix}-");
        let mut shards = Vec::new();
        if self.dir.is_dir() {
            for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
                let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let of_key = name.starts_with(&format!("{keyed}."));
                let stale = (name.starts_with(&stale_prefix) && !of_key)
                    || (with_report && name == "report.json");
                if stale {
                    // Another shard may have removed it first.
                    match std::fs::remove_file(entry.path()) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::io(entry.path(), e));
                        }
                        _ => {}
                    }
                } else if of_key && name.contains(".shard-") && entry.path() != own {
                    shards.push(entry.path());
                }
            }
        }
        if let Some(dir) = own.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        shards.sort();
        if self.shard.is_some() {
            shards.clear();
        }
        Ok((own, shards))
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

    /// Whether this process works on one shard of the stage's items, and
    /// so leaves its outputs and report to the unsharded stage.
    pub fn sharded(&self) -> bool {
        self.shard.is_some()
    }

    /// Marks the stage done. Outputs must be written before this. A shard
    /// never does: the stage is done when every shard's work is merged.
    pub fn finish(&self, report: &StageReport) -> Result<()> {
        if self.sharded() {
            return Ok(());
        }
        atomic_file::write_json(&self.report_path(), report)
    }
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
