//! Crash-safe file writes: a reader sees the old file or the new one, never
//! a torn one. Everything siuo writes outside a journal goes through here.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, creating parent directories as needed; the data is on disk
/// before the rename, so even a power loss leaves the old file or the new.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_inner(path, bytes, true)
}

/// Like [`write`] but without forcing the data to disk: a killed process
/// still leaves the old file or the new one, but a power loss may leave an
/// empty one. For content-addressed caches that are checked on read and can
/// be refilled; an fsync per entry would stall concurrent requests.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    write_inner(path, bytes, false)
}

/// Temporary files are created `0666` less the umask, as `open(2)` makes any
/// file: tempfile's own default, `0600`, would leave a release, a changelog
/// or a VLMEvalKit table unreadable to the other users of a shared file
/// system. siuo keeps no secret on disk.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(0o666));
    builder
}

fn write_inner(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut temp = temp_builder()
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    temp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    if sync {
        temp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    }
    temp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Serializes `value` as pretty JSON with a trailing newline and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Json {
        path: path.to_owned(),
        line: 0,
        source: e,
    })?;
    bytes.push(b'\n');
    write(path, &bytes)
}

/// Writes one JSON object per line, atomically, streaming the records to
/// the temporary file: the file's text is never held in memory.
pub fn write_jsonl<'a, T: serde::Serialize + 'a>(
    path: &Path,
    records: impl IntoIterator<Item = &'a T>,
) -> Result<()> {
    write_jsonl_with(path, |lines| {
        records
            .into_iter()
            .try_for_each(|record| lines.push(record))
    })
}

/// Like [`write_jsonl`], with the records pushed one at a time by `fill`
/// (which may make each from a stream rather than hold them).
pub fn write_jsonl_with(
    path: &Path,
    fill: impl FnOnce(&mut JsonLinesWriter<'_>) -> Result<()>,
) -> Result<()> {
    write_with(path, |out| {
        fill(&mut JsonLinesWriter {
            path,
            out,
            count: 0,
        })
    })
}

/// The JSON Lines file [`write_jsonl_with`] is writing.
pub struct JsonLinesWriter<'a> {
    path: &'a Path,
    out: &'a mut dyn Write,
    count: usize,
}

impl JsonLinesWriter<'_> {
    pub fn push<T: serde::Serialize>(&mut self, record: &T) -> Result<()> {
        self.count += 1;
        serde_json::to_writer(&mut *self.out, record).map_err(|e| Error::Json {
            path: self.path.to_owned(),
            line: self.count,
            source: e,
        })?;
        self.out
            .write_all(b"\n")
            .map_err(|e| Error::io(self.path, e))
    }
}

/// Writes the records `fill` pushes as [`write_json`] writes a slice of
/// them (a pretty JSON array), one record at a time: neither the records
/// nor the array's text are held in memory.
pub fn write_json_array(
    path: &Path,
    fill: impl FnOnce(&mut JsonArrayWriter<'_>) -> Result<()>,
) -> Result<()> {
    write_with(path, |out| {
        let mut array = JsonArrayWriter {
            path,
            out,
            count: 0,
        };
        fill(&mut array)?;
        let end: &[u8] = if array.count == 0 { b"[]\n" } else { b"\n]\n" };
        array.out.write_all(end).map_err(|e| Error::io(path, e))
    })
}

/// The array [`write_json_array`] is writing.
pub struct JsonArrayWriter<'a> {
    path: &'a Path,
    out: &'a mut dyn Write,
    count: usize,
}

impl JsonArrayWriter<'_> {
    pub fn push<T: serde::Serialize>(&mut self, record: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(record).map_err(|e| Error::Json {
            path: self.path.to_owned(),
            line: self.count + 1,
            source: e,
        })?;
        let mut piece = String::from(if self.count == 0 { "[\n" } else { ",\n" });
        // JSON strings escape newlines: every line of `text` is structure.
        for (number, line) in text.lines().enumerate() {
            if number > 0 {
                piece.push('\n');
            }
            piece.push_str("  ");
            piece.push_str(line);
        }
        self.count += 1;
        self.out
            .write_all(piece.as_bytes())
            .map_err(|e| Error::io(self.path, e))
    }
}

/// Like [`write`], with the content written by `fill` through a buffer.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let temp = temp_builder()
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, temp);
    fill(&mut out)?;
    let temp = out
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    temp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    temp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// This process's umask, from /proc (reading it with umask(2) would
    /// change it for every thread).
    fn umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
            .unwrap_or(0o022)
    }

    #[test]
    fn files_are_as_readable_as_the_umask_allows() -> crate::error::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().map_err(|e| crate::error::Error::io("tempdir", e))?;
        let path = dir.path().join("a.json");
        super::write(&path, b"{}")?;
        let streamed = dir.path().join("b.jsonl");
        super::write_jsonl(&streamed, &[1, 2])?;
        for file in [path, streamed] {
            let mode = std::fs::metadata(&file)
                .map_err(|e| crate::error::Error::io(&file, e))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o666 & !umask(), "{}", file.display());
        }
        Ok(())
    }

    #[test]
    fn a_streamed_array_is_the_pretty_json_of_the_slice() -> crate::error::Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::error::Error::io("tempdir", e))?;
        let records = vec![
            serde_json::json!({"a": 1, "b": "two\nlines", "c": [1, {"d": null}]}),
            serde_json::json!({"e": []}),
        ];
        for records in [records.clone(), Vec::new()] {
            let (whole, streamed) = (dir.path().join("whole"), dir.path().join("streamed"));
            super::write_json(&whole, &records)?;
            super::write_json_array(&streamed, |array| {
                records.iter().try_for_each(|record| array.push(record))
            })?;
            assert_eq!(
                std::fs::read_to_string(&streamed).ok(),
                std::fs::read_to_string(&whole).ok()
            );
        }
        Ok(())
    }

    #[test]
    fn replaces_existing_file_and_leaves_no_temp_files() -> crate::error::Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::error::Error::io("tempdir", e))?;
        let path = dir.path().join("nested/out.txt");
        super::write(&path, b"one")?;
        super::write(&path, b"two")?;
        assert_eq!(std::fs::read(&path).ok(), Some(b"two".to_vec()));
        let entries = std::fs::read_dir(dir.path().join("nested"))
            .map_err(|e| crate::error::Error::io("dir", e))?
            .count();
        assert_eq!(entries, 1);
        Ok(())
    }
}
