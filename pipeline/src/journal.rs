//! Append-only JSON Lines journal of a stage's finished work items.
//!
//! A stage appends one line per item as soon as it is done, so a run killed
//! at any point resumes without redoing finished items. A line torn by a
//! crash is cut off when the journal is reopened; a garbled line in the
//! middle is corruption and an error naming the file and line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

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
        let text = String::from_utf8_lossy(&bytes[..complete]);
        let entries = text
            .lines()
            .enumerate()
            .map(|(index, line)| {
                serde_json::from_str(line).map_err(|e| Error::Json {
                    path: path.to_owned(),
                    line: index + 1,
                    source: e,
                })
            })
            .collect::<Result<Vec<T>>>()?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            entries,
        })
    }

    pub fn entries(&self) -> &[T] {
        &self.entries
    }

    /// Records one finished item. One `write` call per line keeps lines whole
    /// unless the process dies inside it, which `open` repairs.
    pub fn append(&mut self, entry: T) -> Result<()> {
        let mut line = serde_json::to_vec(&entry).map_err(|e| Error::Json {
            path: self.path.clone(),
            line: self.entries.len() + 1,
            source: e,
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| Error::io(&self.path, e))?;
        self.entries.push(entry);
        Ok(())
    }

    pub fn into_entries(self) -> Vec<T> {
        self.entries
    }
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
