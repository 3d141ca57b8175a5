//! Append-only JSON Lines journal of a stage's finished work items.
//!
//! A stage appends one line per item as soon as it is done, so a run killed
//! at any point resumes without redoing finished items. A line torn by a
//! crash is cut off when the journal is reopened; a garbled line in the
//! middle is corruption and an error naming the file and line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::record::CandidateVerdict;

pub struct Journal<T> {
    path: PathBuf,
    file: File,
    entries: Vec<T>,
}

impl<T: Serialize + DeserializeOwned> Journal<T> {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            file.set_len(complete as u64)
                .map_err(|e| Error::io(path, e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| Error::io(path, e))?;
        }
        let entries = parse_lines(path, &bytes[..complete])?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            entries,
        })
    }

    /// Adds entries another process journaled (another shard's), as done
    /// work: they are not written to this journal's file.
    pub fn absorb(&mut self, entries: Vec<T>) {
        self.entries.extend(entries);
    }

    /// The complete lines of a journal another process may still be
    /// writing: a last line without its newline is not read (nor cut).
    pub fn read_complete(path: &Path) -> Result<Vec<T>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        parse_lines(path, &bytes[..complete])
    }

    pub fn entries(&self) -> &[T] {
        &self.entries
    }

    /// Records one finished item. One `write` call per line keeps lines whole
    /// unless the process dies inside it, which `open` repairs.
    pub fn append(&mut self, entry: T) -> Result<()> {
        append_line(&mut self.file, &self.path, &entry, self.entries.len() + 1)?;
        self.entries.push(entry);
        Ok(())
    }

    pub fn into_entries(self) -> Vec<T> {
        self.entries
    }
}

/// A journal of one verdict per candidate that holds only the ids of the
/// candidates done, not the verdicts: at 100k candidates the verdicts of a
/// stage are hundreds of MB. They are read back, in candidate order, only
/// when the stage finishes ([`Self::for_each_in_order`]).
pub struct VerdictJournal<V> {
    path: PathBuf,
    file: File,
    /// The files read: this process's first, then other shards'.
    files: Vec<PathBuf>,
    done: BTreeSet<String>,
    _verdict: std::marker::PhantomData<V>,
}

/// Where a verdict line is: file, byte offset and length.
type LineAt = (usize, u64, usize);

impl<V: CandidateVerdict + Serialize + DeserializeOwned> VerdictJournal<V> {
    /// Opens `own` (repairing a torn last line, checking every line) and
    /// reads `others` (other shards' journals, which may still be written:
    /// only their complete lines).
    pub fn open(own: &Path, others: &[PathBuf]) -> Result<Self> {
        let journal: Journal<IdOnly> = Journal::open(own)?;
        let mut done: BTreeSet<String> = journal
            .entries
            .iter()
            .map(|e| e.candidate_id.clone())
            .collect();
        // Every line must be a whole verdict, not just carry an id.
        each_line(own, true, |_, line, number| {
            parse_line::<V>(own, line, number).map(drop)
        })?;
        for other in others {
            each_line(other, false, |_, line, number| {
                done.insert(parse_line::<IdOnly>(other, line, number)?.candidate_id);
                Ok(())
            })?;
        }
        let mut files = vec![own.to_owned()];
        files.extend(others.iter().cloned());
        Ok(VerdictJournal {
            path: journal.path,
            file: journal.file,
            files,
            done,
            _verdict: std::marker::PhantomData,
        })
    }

    pub fn is_done(&self, candidate_id: &str) -> bool {
        self.done.contains(candidate_id)
    }

    pub fn append(&mut self, verdict: V) -> Result<()> {
        append_line(&mut self.file, &self.path, &verdict, self.done.len() + 1)?;
        self.done.insert(verdict.candidate_id().to_owned());
        Ok(())
    }

    /// Calls `each` with the journaled verdict of every candidate of
    /// `candidates` that has one (the first, when two shards journaled
    /// it), in candidate id order, holding one verdict at a time.
    pub fn for_each_in_order(
        &self,
        candidates: &BTreeSet<&str>,
        mut each: impl FnMut(V) -> Result<()>,
    ) -> Result<()> {
        let mut at: BTreeMap<String, LineAt> = BTreeMap::new();
        for (index, path) in self.files.iter().enumerate() {
            each_line(path, false, |offset, line, number| {
                let id = parse_line::<IdOnly>(path, line, number)?.candidate_id;
                if candidates.contains(id.as_str()) {
                    at.entry(id).or_insert((index, offset, line.len()));
                }
                Ok(())
            })?;
        }
        let mut files: Vec<Option<File>> = self.files.iter().map(|_| None).collect();
        let mut line = Vec::new();
        for (index, offset, length) in at.into_values() {
            let path = &self.files[index];
            let file = match &mut files[index] {
                Some(file) => file,
                slot => slot.insert(File::open(path).map_err(|e| Error::io(path, e))?),
            };
            line.resize(length, 0);
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut line))
                .map_err(|e| Error::io(path, e))?;
            let text = String::from_utf8_lossy(&line);
            each(parse_line::<V>(path, &text, 0)?)?;
        }
        Ok(())
    }
}

#[derive(serde::Deserialize, Serialize)]
struct IdOnly {
    candidate_id: String,
}

/// Calls `each` with (byte offset, text, line number) of every complete
/// line of a journal; `all` also reads a last line without its newline.
fn each_line(
    path: &Path,
    all: bool,
    mut each: impl FnMut(u64, &str, usize) -> Result<()>,
) -> Result<()> {
    use std::io::BufRead as _;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let (mut offset, mut number, mut line) = (0u64, 0usize, Vec::new());
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 || (!all && line.last() != Some(&b'\n')) {
            return Ok(());
        }
        number += 1;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if !text.is_empty() {
            each(offset, text, number)?;
        }
        offset += read as u64;
    }
}

fn parse_line<T: DeserializeOwned>(path: &Path, line: &str, number: usize) -> Result<T> {
    serde_json::from_str(line).map_err(|e| Error::Json {
        path: path.to_owned(),
        line: number,
        source: e,
    })
}

/// Appends one record as a line, in one `write` call: the line is whole
/// unless the process dies inside it, which opening the journal repairs.
fn append_line(file: &mut File, path: &Path, record: &impl Serialize, number: usize) -> Result<()> {
    let mut line = serde_json::to_vec(record).map_err(|e| Error::Json {
        path: path.to_owned(),
        line: number,
        source: e,
    })?;
    line.push(b'\n');
    file.write_all(&line).map_err(|e| Error::io(path, e))
}

fn parse_lines<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<Vec<T>> {
    String::from_utf8_lossy(bytes)
        .lines()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| Error::Json {
                path: path.to_owned(),
                line: index + 1,
                source: e,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_last_line_is_cut_and_work_continues() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "1\n2\n3").map_err(|e| Error::io(&path, e))?;
        let mut journal: Journal<u32> = Journal::open(&path)?;
        assert_eq!(journal.entries(), &[1, 2]);
        journal.append(4)?;
        drop(journal);
        let journal: Journal<u32> = Journal::open(&path)?;
        assert_eq!(journal.entries(), &[1, 2, 4]);
        Ok(())
    }

    #[test]
    fn garbled_line_names_file_and_line() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "1\nnope\n3\n").map_err(|e| Error::io(&path, e))?;
        let message = Journal::<u32>::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("j.jsonl:2: invalid record"), "{message}");
        Ok(())
    }
}
