//! A release as the TSV VLMEvalKit's `SIUO_GEN` dataset reads
//! (`vlmeval/dataset/siuo_gen.py`): one row per case with the image inline
//! as base64, the question, the safety warning, the reference answer as
//! `answer`, and the category. VLMEvalKit loads it with
//! `pandas.read_csv(sep="\t")`, so a field holding a tab, a line break or a
//! quote is quoted CSV-style. It checks the file against a pinned MD5; the
//! MD5 of this file is written beside it and printed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use md5::Digest as _;
use serde::Serialize;

use siuo_core::error::{Error, Result};
use siuo_core::release::{IMAGES, Release};

/// The dataset name VLMEvalKit's SIUO evaluation is registered under.
pub const DATASET: &str = "SIUO_GEN";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Written {
    pub release: String,
    pub path: PathBuf,
    pub md5: String,
    pub cases: usize,
    pub bytes: u64,
}

impl Written {
    pub fn render(&self) -> String {
        format!(
            "wrote {} ({} cases of {}, {} bytes, md5 {})\n\
             VLMEvalKit pins the MD5 of its own SIUO_GEN.tsv and would download that file over this one; register this file's MD5 before building the dataset:\n  \
             from vlmeval.dataset.siuo_gen import SIUOGenDataset\n  \
             SIUOGenDataset.DATASET_MD5[\"{DATASET}\"] = \"{}\"\n\
             then put the file in $LMUData (default ~/LMUData) and run `python run.py --data {DATASET} --model <model>`\n",
            self.path.display(),
            self.cases,
            self.release,
            self.bytes,
            self.md5,
            self.md5
        )
    }
}

/// A TSV field: quoted when pandas would otherwise split or strip it.
fn field(text: &str) -> String {
    if text.contains(['\t', '\n', '\r', '"']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub fn write(release: &Release, out: &Path) -> Result<Written> {
    let cases = release.cases()?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let path = out.join(format!("{DATASET}.tsv"));
    let mut tsv: Vec<u8> = Vec::new();
    tsv.extend_from_slice(
        b"index\timage\tquestion\tsafety_warning\tanswer\tcategory\tsubcategory\tquestion_id\n",
    );
    for case in &cases {
        let image_path = release.dir.join(IMAGES).join(&case.image);
        let image = siuo_core::input_file::read_bytes(&image_path)?;
        let row = [
            case.question_id.to_string(),
            base64::engine::general_purpose::STANDARD.encode(&image),
            field(&case.question),
            field(&case.safety_warning),
            field(&case.reference_answer),
            field(&case.category),
            field(&case.subcategory),
            case.question_id.to_string(),
        ];
        let _ = writeln!(tsv, "{}", row.join("\t"));
    }
    siuo_core::atomic_file::write(&path, &tsv)?;
    let md5 = format!("{:x}", md5::Md5::digest(&tsv));
    siuo_core::atomic_file::write(
        &out.join(format!("{DATASET}.tsv.md5")),
        format!("{md5}  {DATASET}.tsv\n").as_bytes(),
    )?;
    Ok(Written {
        release: release.name(),
        path,
        md5,
        cases: cases.len(),
        bytes: tsv.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_pandas_would_split_are_quoted() {
        assert_eq!(field("plain text"), "plain text");
        assert_eq!(field("a\tb"), "\"a\tb\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
