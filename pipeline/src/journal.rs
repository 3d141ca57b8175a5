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

/// Where a journal line is: its byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAt {
    pub offset: u64,
    pub length: usize,
}

/// An append-only journal that keeps no entries in memory: opening it
/// streams each entry, with where its line is, to the caller, which keeps
/// what it needs (an id, a sum, a [`LineAt`]) and reads a line back with
/// [`Self::read`] when it needs the whole entry. At 100k work items the
/// entries of a request log or a panel's answers are hundreds of MB.
pub struct LineJournal<T> {
    path: PathBuf,
    file: File,
    lines: usize,
    end: u64,
    _entry: std::marker::PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> LineJournal<T> {
    /// Opens (or creates) the journal, cutting a torn last line off and
    /// calling `each` with every entry in file order; a garbled line is an
    /// error naming the file and line.
    pub fn open(path: &Path, mut each: impl FnMut(LineAt, T) -> Result<()>) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let mut lines = 0;
        let end = each_line(path, false, |offset, line, number| {
            lines = number;
            let at = LineAt {
                offset,
                length: line.len(),
            };
            each(at, parse_line(path, line, number)?)
        })?;
        let length = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if end < length {
            file.set_len(end).map_err(|e| Error::io(path, e))?;
        }
        Ok(LineJournal {
            path: path.to_owned(),
            file,
            lines,
            end,
            _entry: std::marker::PhantomData,
        })
    }

    /// Records one entry; returns where its line is.
    pub fn append(&mut self, entry: &T) -> Result<LineAt> {
        self.lines += 1;
        let written = append_line(&mut self.file, &self.path, entry, self.lines)?;
        let at = LineAt {
            offset: self.end,
            length: written - 1,
        };
        self.end += written as u64;
        Ok(at)
    }

    /// The entry whose line is at `at`.
    pub fn read(&self, at: LineAt) -> Result<T> {
        use std::os::unix::fs::FileExt as _;
        let mut line = vec![0; at.length];
        self.file
            .read_exact_at(&mut line, at.offset)
            .map_err(|e| Error::io(&self.path, e))?;
        parse_line(&self.path, &String::from_utf8_lossy(&line), 0)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A journal of one verdict per candidate that holds only the ids of the
/// candidates done, not the verdicts: at 100k candidates the verdicts of a
/// stage are hundreds of MB. They are read back, in candidate order, only
/// when the stage finishes ([`Self::for_each_in_order`]).
pub struct VerdictJournal<V> {
    journal: LineJournal<V>,
    /// The files read: this process's first, then other shards'.
    files: Vec<PathBuf>,
    done: BTreeSet<String>,
}

/// Where a verdict line is: file, byte offset and length.
type VerdictAt = (usize, u64, usize);

impl<V: CandidateVerdict + Serialize + DeserializeOwned> VerdictJournal<V> {
    /// Opens `own` (repairing a torn last line, checking every line) and
    /// reads `others` (other shards' journals, which may still be written:
    /// only their complete lines).
    pub fn open(own: &Path, others: &[PathBuf]) -> Result<Self> {
        let mut done = BTreeSet::new();
        // Every line must be a whole verdict, not just carry an id.
        let journal = LineJournal::open(own, |_, verdict: V| {
            done.insert(verdict.candidate_id().to_owned());
            Ok(())
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
            journal,
            files,
            done,
        })
    }

    pub fn is_done(&self, candidate_id: &str) -> bool {
        self.done.contains(candidate_id)
    }

    pub fn append(&mut self, verdict: V) -> Result<()> {
        self.journal.append(&verdict)?;
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
        let mut at: BTreeMap<String, VerdictAt> = BTreeMap::new();
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

/// Calls `each` with every entry of the complete lines of a journal, one
/// at a time (another process may still be writing it).
pub fn for_each_entry<T: DeserializeOwned>(
    path: &Path,
    mut each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    each_line(path, false, |_, line, number| {
        each(parse_line(path, line, number)?)
    })
    .map(drop)
}

#[derive(serde::Deserialize, Serialize)]
struct IdOnly {
    candidate_id: String,
}

/// Calls `each` with (byte offset, text, line number) of every complete
/// line of a journal; `all` also reads a last line without its newline.
/// Returns the end of the last line read.
fn each_line(
    path: &Path,
    all: bool,
    mut each: impl FnMut(u64, &str, usize) -> Result<()>,
) -> Result<u64> {
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
            return Ok(offset);
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
/// Returns the bytes written.
fn append_line(
    file: &mut File,
    path: &Path,
    record: &impl Serialize,
    number: usize,
) -> Result<usize> {
    let mut line = serde_json::to_vec(record).map_err(|e| Error::Json {
        path: path.to_owned(),
        line: number,
        source: e,
    })?;
    line.push(b'\n');
    file.write_all(&line).map_err(|e| Error::io(path, e))?;
    Ok(line.len())
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
