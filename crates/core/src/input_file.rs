//! Reading user-edited input files with errors that name the file.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| read_error(path, e))
}

pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| read_error(path, e))
}

/// A file that is not there is bad input (exit 2), naming the file; other
/// failures to read are I/O errors.
fn read_error(path: &Path, error: std::io::Error) -> Error {
    match error.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            path: path.to_owned(),
        },
        _ => Error::io(path, error),
    }
}

pub fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_saphyr::from_str(text).map_err(|e| Error::Yaml {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    parse_yaml(path, &read_text(path)?)
}

/// Reads a JSON Lines file of records; a line that does not parse is an
/// error naming the file and line. The file is read line by line, so only
/// the records are held, not the text too.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut records = Vec::new();
    for_each_jsonl(path, |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

/// Calls `each` with every record of a JSON Lines file, in order, holding
/// one line at a time.
pub fn for_each_jsonl<T: DeserializeOwned>(
    path: &Path,
    mut each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let mut reader = JsonlReader::open(path)?;
    while let Some(record) = reader.next_record()? {
        each(record)?;
    }
    Ok(())
}

/// The records of a JSON Lines file, read one line at a time when asked
/// for: for consumers that take a few records at a time (a parquet row
/// group) rather than all of them.
pub struct JsonlReader {
    path: std::path::PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    line: String,
    number: usize,
}

impl JsonlReader {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
        Ok(JsonlReader {
            path: path.to_owned(),
            reader: std::io::BufReader::with_capacity(1 << 16, file),
            line: String::new(),
            number: 0,
        })
    }

    /// The line the last record came from (1-based).
    pub fn line_number(&self) -> usize {
        self.number
    }

    /// The next record; `None` at the end of the file. A line that is not
    /// a record is an error naming the file and line.
    pub fn next_record<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        use std::io::BufRead as _;
        let path = &self.path;
        loop {
            self.line.clear();
            self.number += 1;
            let number = self.number;
            let read = self
                .reader
                .read_line(&mut self.line)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::InvalidData => Error::InvalidRecord {
                        path: path.clone(),
                        record: format!("line {number}"),
                        message: "is not UTF-8 text".to_owned(),
                    },
                    _ => Error::io(path, e),
                })?;
            if read == 0 {
                return Ok(None);
            }
            if self.line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&self.line)
                .map(Some)
                .map_err(|e| Error::Json {
                    path: path.clone(),
                    line: number,
                    source: e,
                });
        }
    }
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_owned(),
        line: e.line(),
        source: e,
    })
}

/// Every file under `dir`, recursively, as (`/`-separated relative path,
/// full path), sorted by relative path so callers are deterministic.
pub fn files_under(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(|e| Error::io(&current, e))? {
            let path = entry.map_err(|e| Error::io(&current, e))?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push((name, path));
        }
    }
    files.sort();
    Ok(files)
}
