//! Reading user-edited input files with errors that name the file.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
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
/// error naming the file and line.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| Error::Json {
                path: path.to_owned(),
                line: index + 1,
                source: e,
            })
        })
        .collect()
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_owned(),
        line: e.line(),
        source: e,
    })
}
