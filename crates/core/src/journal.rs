//! Append-only JSON Lines journal of a stage's finished work items.
//!
//! A stage appends one line per item as soon as it is done, so a run killed
//! at any point resumes without redoing finished items. A line torn by a
//! crash is cut off when the journal is reopened; a garbled line in the
//! middle is corruption and an error naming the file and line.
//!
//! What shards hand in (`--shard I/N` journals, merged by the unsharded
//! stage) is checked like any input, by [`ShardMerge`]: an entry whose
//! content does not make its id, one for another shard's item, or one
//! journaled twice with other content is an error naming its file and line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::record::CandidateVerdict;

/// A journal entry as one finished work item: which item it is (the id
/// that decides its shard), and whether its content is what that item
/// made, as far as the entry itself can tell.
pub trait WorkItem {
    fn item_id(&self) -> &str;

    /// Why the entry cannot be what its item made: an id its content does
    /// not derive, say.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The entries of a stage's journals read so far, when shards journaled
/// some of its items: where each item was read, and a digest of what it
/// says, so an item two files disagree on is found, whatever the order.
#[derive(Default)]
pub struct ShardMerge {
    files: Vec<PathBuf>,
    seen: HashMap<String, (usize, usize, [u8; 16])>,
}

impl ShardMerge {
    /// Notes the entry at `path:line` about `id`, read from the file of
    /// `shard` (`None` for the merging process's own file); whether it is
    /// new (`false` for a copy of an entry already read). An entry of
    /// another shard's item, or one that says something else about an item
    /// already read, is an error naming both places.
    pub fn add(
        &mut self,
        path: &Path,
        line: usize,
        id: &str,
        content: &impl Serialize,
        shard: Option<crate::shard::Shard>,
    ) -> Result<bool> {
        let invalid = |message: String| Error::InvalidLine {
            path: path.to_owned(),
            line,
            message,
        };
        if let Some(shard) = shard
            && !shard.contains(id)
        {
            return Err(invalid(format!(
                "work item {} is not shard {shard}'s (it is shard {}'s); the file was not written by the shard its name says",
                crate::text_normal::shown(id, 70),
                shard.owner_of(id)
            )));
        }
        let bytes = serde_json::to_vec(content).map_err(|e| Error::Json {
            path: path.to_owned(),
            line,
            source: e,
        })?;
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&blake3::hash(&bytes).as_bytes()[..16]);
        let file = match self.files.iter().position(|f| f == path) {
            Some(index) => index,
            None => {
                self.files.push(path.to_owned());
                self.files.len() - 1
            }
        };
        match self.seen.get(id) {
            Some((_, _, earlier)) if *earlier == digest => Ok(false),
            Some((other, other_line, _)) => Err(invalid(format!(
                "work item {} is also journaled at {}:{other_line} with other content; the shards disagree, so neither is merged (remove the wrong line, or both to redo the item)",
                crate::text_normal::shown(id, 70),
                self.files[*other].display()
            ))),
            None => {
                self.seen.insert(id.to_owned(), (file, line, digest));
                Ok(true)
            }
        }
    }
}

/// [`WorkItem::check`] as an error naming the entry's file and line.
fn check_item(path: &Path, line: usize, entry: &impl WorkItem) -> Result<()> {
    entry.check().map_err(|message| Error::InvalidLine {
        path: path.to_owned(),
        line,
        message,
    })
}

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

    /// Opens `own` (see [`Self::open`]) and adds what the shards of
    /// `shards` (their files) journaled as done work, which is not written
    /// to `own`. Every entry is checked ([`WorkItem::check`]), and a shard's
    /// against the others' and its shard (see [`ShardMerge`]).
    pub fn open_merged(own: &Path, shards: &[PathBuf]) -> Result<Self>
    where
        T: WorkItem,
    {
        let mut journal = Journal::open(own)?;
        for (index, entry) in journal.entries.iter().enumerate() {
            check_item(own, index + 1, entry)?;
        }
        if shards.is_empty() {
            return Ok(journal);
        }
        let mut merge = ShardMerge::default();
        for (index, entry) in journal.entries.iter().enumerate() {
            merge.add(own, index + 1, entry.item_id(), entry, None)?;
        }
        for path in shards {
            let shard = crate::shard::Shard::of_file(path);
            for (index, entry) in Journal::<T>::read_complete(path)?.into_iter().enumerate() {
                check_item(path, index + 1, &entry)?;
                if merge.add(path, index + 1, entry.item_id(), &entry, shard)? {
                    journal.entries.push(entry);
                }
            }
        }
        Ok(journal)
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
    ///
    /// Another shard's verdict is checked against its shard and against
    /// the verdicts read before it (see [`ShardMerge`]).
    pub fn open(own: &Path, others: &[PathBuf]) -> Result<Self> {
        let mut done = BTreeSet::new();
        let mut merge = (!others.is_empty()).then(ShardMerge::default);
        let mut line = 0;
        // Every line must be a whole verdict, not just carry an id.
        let journal = LineJournal::open(own, |_, verdict: V| {
            line += 1;
            if let Some(merge) = &mut merge {
                merge.add(own, line, verdict.candidate_id(), &verdict, None)?;
            }
            done.insert(verdict.candidate_id().to_owned());
            Ok(())
        })?;
        for other in others {
            let shard = crate::shard::Shard::of_file(other);
            each_line(other, false, |_, line, number| {
                let verdict = parse_line::<V>(other, line, number)?;
                if let Some(merge) = &mut merge {
                    merge.add(other, number, verdict.candidate_id(), &verdict, shard)?;
                }
                done.insert(verdict.candidate_id().to_owned());
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
