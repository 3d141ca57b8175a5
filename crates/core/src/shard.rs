//! One shard of a stage's work items, for runs spread over the machines of
//! a job array (`--shard I/N`, Slurm's `SLURM_ARRAY_TASK_ID` or Kubernetes'
//! `JOB_COMPLETION_INDEX` as I).
//!
//! An item belongs to shard `I` when the blake3 of its id, as a number, is
//! `I` modulo `N`: every machine computes the same split without talking
//! to the others, and an item's shard does not depend on what else is in
//! the run. A shard journals its items in files of its own
//! (`journal-<key>.shard-I-of-N.jsonl`, `requests.shard-I-of-N.jsonl`), so
//! shards never write to one file; the unsharded stage reads them all as
//! done work.
//!
//! A shard is a value handed to what works on it (a stage's input, a
//! client's endpoint), never a setting of the process: one process may
//! work on several.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not I/N (e.g. 0/4)"))?;
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{text}`: {what} `{part}` is not a whole number"))
        };
        let (index, count) = (number(index, "I")?, number(count, "N")?);
        if count == 0 || index >= count {
            return Err(format!(
                "`{text}`: I must be at least 0 and below N, and N at least 1 (shards are numbered 0 to N-1)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the item with this id is this shard's.
    pub fn contains(&self, id: &str) -> bool {
        self.owner_of(id).index == self.index
    }

    /// Which shard of this many owns the item with this id.
    pub fn owner_of(&self, id: &str) -> Shard {
        let hash = blake3::hash(id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        Shard {
            index: (u64::from_le_bytes(first) % u64::from(self.count)) as u32,
            count: self.count,
        }
    }

    /// The shard whose file `path` is (`stem.shard-I-of-N.ext`), if any.
    pub fn of_file(path: &Path) -> Option<Shard> {
        let name = path.file_name()?.to_str()?;
        let (_, rest) = name.split_once(".shard-")?;
        let (index, rest) = rest.split_once("-of-")?;
        let count = rest.split('.').next()?;
        Shard::parse(&format!("{index}/{count}")).ok()
    }

    /// `shard-I-of-N`, the infix of this shard's files.
    pub fn infix(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `dir/stem.ext` for the unsharded work, `dir/stem.shard-I-of-N.ext` for
/// a shard: a file each shard writes alone.
pub fn own_file(path: &Path, shard: Option<Shard>) -> PathBuf {
    match shard {
        Some(shard) => own_file_of(path, shard),
        None => path.to_owned(),
    }
}

/// `dir/stem.shard-I-of-N.ext`: the file `shard` writes alone.
fn own_file_of(path: &Path, shard: Shard) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let named = match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{}.{ext}", shard.infix()),
        None => format!("{name}.{}", shard.infix()),
    };
    path.with_file_name(named)
}

/// The existing files of `path`'s family: the unsharded `stem.ext` and
/// every shard's `stem.shard-I-of-N.ext`, sorted.
pub fn all_files(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    // The unsharded name of a shard's file.
    let plain = match name.split_once(".shard-") {
        Some((stem, rest)) => match rest.split_once('.') {
            Some((_, ext)) => format!("{stem}.{ext}"),
            None => stem.to_owned(),
        },
        None => name.to_owned(),
    };
    let (stem, ext) = plain.rsplit_once('.').unwrap_or((plain.as_str(), ""));
    let shard_prefix = format!("{stem}.shard-");
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        n == plain || (n.starts_with(&shard_prefix) && n.ends_with(&format!(".{ext}")))
    });
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_items_into_disjoint_parts_that_cover_all() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0; 3];
        for item in 0..3000 {
            let id = format!("item-{item}");
            let owners: Vec<usize> = (0..3).filter(|s| shards[*s].contains(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|s| (900..1100).contains(s)), "{sizes:?}");
    }

    #[test]
    fn a_shard_file_names_its_shard() {
        let shard = Shard { index: 2, count: 5 };
        let file = own_file_of(Path::new("/x/journal-ab.jsonl"), shard);
        assert_eq!(file, Path::new("/x/journal-ab.shard-2-of-5.jsonl"));
        assert_eq!(Shard::of_file(&file), Some(shard));
        assert_eq!(Shard::of_file(Path::new("/x/journal-ab.jsonl")), None);
        assert_eq!(Shard::of_file(Path::new("/x/j.shard-5-of-5.jsonl")), None);
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
