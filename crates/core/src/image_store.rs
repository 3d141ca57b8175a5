//! Content-addressed image store under `raw/images/`: every image is kept
//! once, with its original bytes, under the blake3 of those bytes.

use std::path::{Path, PathBuf};

use crate::atomic_file;
use crate::content_hash::Digest;
use crate::error::Result;
use crate::input_file;
use crate::pixels;
use crate::record::ImageRef;

pub struct ImageStore {
    raw: PathBuf,
}

impl ImageStore {
    pub fn new(raw: &Path) -> Self {
        ImageStore {
            raw: raw.to_owned(),
        }
    }

    /// Stores `bytes` unless already present. The extension comes from the
    /// bytes when they are a known format, else from `original_name`, so an
    /// undecodable file is still kept for the check stage to reject.
    pub fn put(&self, bytes: &[u8], original_name: &str) -> Result<ImageRef> {
        let digest = Digest::of(bytes).hex();
        let extension = pixels::sniff_extension(bytes)
            .map(str::to_owned)
            .unwrap_or_else(|| extension_of(original_name));
        let relative = format!("images/{digest}.{extension}");
        let path = self.raw.join(&relative);
        let already_stored = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
        if !already_stored {
            // Content-addressed and re-checked on read (size above, decode in
            // check), so no fsync: it would stall concurrent generation.
            atomic_file::write_unsynced(&path, bytes)?;
        }
        Ok(ImageRef {
            blake3: digest,
            path: relative,
            extension,
            bytes: bytes.len() as u64,
        })
    }

    pub fn path(&self, image: &ImageRef) -> PathBuf {
        self.raw.join(&image.path)
    }

    pub fn read(&self, image: &ImageRef) -> Result<Vec<u8>> {
        input_file::read_bytes(&self.path(image))
    }
}

fn extension_of(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| (1..=5).contains(&e.len()) && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "bin".to_owned())
}
