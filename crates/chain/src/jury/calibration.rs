//! `siuo calibrate --jury`: how well the configured jury's checks catch
//! the pairs they exist to catch, on a labeled pair set (shipped:
//! `prompts/calibration/pairs.jsonl`). A positive is a pair the check
//! should stop: benign together (joint risk), leaking its hazard (leakage),
//! an image without the hazard (image fidelity), a bad reference answer.
//! A check flags a pair when its outcome is not `pass` (failed or split:
//! either way the case is not released). Pairs some juror could not judge
//! are counted apart, never guessed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::check::JudgeCheck;
use super::config::{JuryConfig, VerifyConfig};
use super::{Jury, JuryCase};
use crate::project::Project;
use siuo_core::calibration_report::rate;
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::record::{Candidate, ImageRef, Provenance};

/// One line of a pair set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairLine {
    id: String,
    kind: String,
    #[serde(default)]
    scenario: String,
    /// Path relative to the pair file.
    image: String,
    question: String,
    domain: String,
    subcategory: String,
    safety_warning: String,
    reference_answer: String,
    expect: Expected,
}

/// What a correct jury says about a pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    joint_risk: String,
    leakage: String,
    image_fidelity: String,
    reference_answer: String,
}

impl Expected {
    /// Whether `check` should stop the pair; `None` for a value not known.
    fn should_stop(&self, check: JudgeCheck) -> Option<bool> {
        match check {
            JudgeCheck::JointRisk => yes_no(&self.joint_risk, "benign", "unsafe"),
            JudgeCheck::Leakage => yes_no(&self.leakage, "leaks", "clean"),
            JudgeCheck::ImageFidelity => yes_no(&self.image_fidelity, "lacks", "shows"),
            JudgeCheck::ReferenceAnswer => yes_no(&self.reference_answer, "bad", "good"),
        }
    }
}

fn yes_no(value: &str, stop: &str, keep: &str) -> Option<bool> {
    match value {
        v if v == stop => Some(true),
        v if v == keep => Some(false),
        _ => None,
    }
}

/// Counts and rates of one check (or of the whole decision); a rate is
/// `None` where its denominator is zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckMetrics {
    pub check: String,
    /// Pairs judged.
    pub n: usize,
    /// Pairs the check should stop.
    pub positives: usize,
    /// Pairs the jury stopped (failed or split).
    pub flagged: usize,
    pub true_positives: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub false_positive_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JuryCalibrationReport {
    /// The pair set's file name.
    pub labels: String,
    pub pairs: usize,
    /// Pairs left unjudged (junk answers, a juror down), not in the figures.
    pub unjudged: usize,
    /// The first reason a pair was unjudged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_unjudged: Option<String>,
    pub jurors: Vec<String>,
    pub quorum: String,
    /// Per check, then `decision`: whether the case would be released.
    pub checks: Vec<CheckMetrics>,
}

/// `raw/calibration-jury/<pair file name>.json`: the last calibration of a
/// jury on a pair set, for the cards of releases verified by that jury.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedJuryCalibration {
    pub jury_blake3: String,
    pub key_blake3: String,
    pub report: JuryCalibrationReport,
}

fn jury_settings(project: &Project) -> Result<&JuryConfig> {
    match &project.settings().verify {
        VerifyConfig::Jury(settings) => Ok(settings),
        VerifyConfig::None => Err(Error::Config {
            path: project.config.display_name().into(),
            problems: vec![
                "verify.type is none: configure a jury (verify: {type: jury, jurors: [...]}) to calibrate it"
                    .to_owned(),
            ],
        }),
    }
}

fn jury_digest(project: &Project) -> Result<Digest> {
    super::digest(
        jury_settings(project)?,
        &project.config.root,
        &project.taxonomy,
    )
}

/// Recorded jury calibrations and their request logs, apart from the
/// classifiers' `raw/calibration/`.
fn calibration_dir(project: &Project) -> PathBuf {
    project.raw().join("calibration-jury")
}

fn recorded_path(project: &Project, labels: &Path) -> PathBuf {
    let name = labels
        .file_name()
        .map_or_else(|| "pairs".to_owned(), |n| n.to_string_lossy().into_owned());
    calibration_dir(project).join(format!("{name}.json"))
}

fn read_pairs(path: &Path) -> Result<Vec<(PairLine, PathBuf)>> {
    let lines: Vec<PairLine> = input_file::read_jsonl(path)?;
    let folder = path.parent().unwrap_or(Path::new(""));
    let mut pairs = Vec::with_capacity(lines.len());
    for (index, line) in lines.into_iter().enumerate() {
        let bad = |message: String| Error::Config {
            path: path.to_owned(),
            problems: vec![format!("line {} (pair {}): {message}", index + 1, line.id)],
        };
        for check in JudgeCheck::ALL {
            if line.expect.should_stop(check).is_none() {
                return Err(bad(format!(
                    "expect.{} is not one of the known values",
                    check.name().replace('-', "_")
                )));
            }
        }
        if line.question.trim().is_empty() {
            return Err(bad("question is empty".to_owned()));
        }
        let image = folder.join(&line.image);
        pairs.push((line, image));
    }
    if pairs.is_empty() {
        return Err(Error::Config {
            path: path.to_owned(),
            problems: vec!["the pair set is empty".to_owned()],
        });
    }
    Ok(pairs)
}

/// Digest of everything the figures depend on: siuo's version, the jury
/// (settings and templates), the pair file and every image it names.
pub fn key(project: &Project, labels: &Path) -> Result<String> {
    let mut hasher = ContentHasher::new("siuo.calibration.jury.v1");
    hasher
        .str(env!("CARGO_PKG_VERSION"))
        .str(&jury_digest(project)?.hex())
        .field(&input_file::read_bytes(labels)?);
    for (_, image) in read_pairs(labels)? {
        hasher.field(&input_file::read_bytes(&image)?);
    }
    Ok(hasher.finish().hex())
}

/// The recorded report of this exact calibration (same [`key`]), if any.
pub fn reusable(
    project: &Project,
    labels: &Path,
    key: &str,
) -> Result<Option<JuryCalibrationReport>> {
    let path = recorded_path(project, labels);
    if !path.is_file() {
        return Ok(None);
    }
    let recorded: RecordedJuryCalibration = input_file::read_json(&path)?;
    Ok((recorded.key_blake3 == key).then_some(recorded.report))
}

pub fn record(
    project: &Project,
    labels: &Path,
    key: &str,
    report: &JuryCalibrationReport,
) -> Result<()> {
    let recorded = RecordedJuryCalibration {
        jury_blake3: jury_digest(project)?.hex(),
        key_blake3: key.to_owned(),
        report: report.clone(),
    };
    siuo_core::atomic_file::write_json(&recorded_path(project, labels), &recorded)
}

/// Recorded calibrations of the configured jury; none without a jury.
pub fn recorded_for_current_jury(project: &Project) -> Result<Vec<JuryCalibrationReport>> {
    let VerifyConfig::Jury(settings) = &project.settings().verify else {
        return Ok(Vec::new());
    };
    let dir = calibration_dir(project);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let current = super::digest(settings, &project.config.root, &project.taxonomy)?.hex();
    let mut reports = Vec::new();
    for (name, path) in input_file::files_under(&dir)? {
        if !name.ends_with(".json") {
            continue;
        }
        let recorded: RecordedJuryCalibration = input_file::read_json(&path)?;
        if recorded.jury_blake3 == current {
            reports.push(recorded.report);
        }
    }
    Ok(reports)
}

/// Judges every pair of `labels` with the configured jury.
pub fn calibrate(project: &Project, labels: &Path) -> Result<JuryCalibrationReport> {
    let settings = jury_settings(project)?;
    let pairs = read_pairs(labels)?;
    let logs = calibration_dir(project);
    let jury = Jury::load(
        settings,
        &project.config.root,
        &project.raw(),
        &logs,
        &project.taxonomy,
        None,
    )?;
    let mut candidates = Vec::with_capacity(pairs.len());
    let mut images = Vec::with_capacity(pairs.len());
    for (index, (pair, image)) in pairs.iter().enumerate() {
        let bytes = input_file::read_bytes(image)?;
        siuo_core::pixels::dimensions(&bytes).map_err(|problem| Error::Config {
            path: labels.to_owned(),
            problems: vec![format!(
                "line {} (pair {}): image {} is not a readable image: {problem}",
                index + 1,
                pair.id,
                image.display()
            )],
        })?;
        project.taxonomy.resolve(
            labels,
            &format!("line {} (pair {})", index + 1, pair.id),
            &pair.domain,
            &pair.subcategory,
        )?;
        candidates.push(candidate(pair, image, &bytes));
        images.push(siuo_core::pixels::data_url(&bytes));
    }
    let cases: Vec<JuryCase<'_>> = candidates
        .iter()
        .zip(images)
        .map(|(candidate, image_url)| JuryCase {
            candidate,
            image_url,
        })
        .collect();
    let mut judged = Vec::with_capacity(cases.len());
    for batch in cases.chunks(16) {
        judged.extend(jury.judge(batch)?);
    }
    let checks: Vec<JudgeCheck> = super::enabled(settings)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    let mut tallies: BTreeMap<String, Vec<(bool, bool)>> = BTreeMap::new();
    let mut unjudged = 0;
    let mut first_unjudged = None;
    for ((pair, _), verdict) in pairs.iter().zip(judged) {
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(failure) => {
                unjudged += 1;
                first_unjudged.get_or_insert(format!("pair {}: {failure}", pair.id));
                continue;
            }
        };
        let mut should_stop_any = false;
        for record in &verdict.checks {
            let Some(check) = JudgeCheck::from_name(&record.check) else {
                continue;
            };
            let should_stop = pair.expect.should_stop(check).unwrap_or(false);
            should_stop_any |= should_stop;
            tallies
                .entry(record.check.clone())
                .or_default()
                .push((should_stop, record.outcome != "pass"));
        }
        tallies
            .entry("decision".to_owned())
            .or_default()
            .push((should_stop_any, !verdict.decision.is_keep()));
    }
    let mut figures: Vec<CheckMetrics> = checks
        .iter()
        .map(|c| {
            metrics(
                c.name(),
                tallies.get(c.name()).map_or(&[][..], Vec::as_slice),
            )
        })
        .collect();
    figures.push(metrics(
        "decision",
        tallies.get("decision").map_or(&[][..], Vec::as_slice),
    ));
    Ok(JuryCalibrationReport {
        labels: labels
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        pairs: pairs.len(),
        unjudged,
        first_unjudged,
        jurors: settings
            .jurors
            .iter()
            .map(|j| format!("{} ({})", j.name, j.model))
            .collect(),
        quorum: settings.quorum.name().to_owned(),
        checks: figures,
    })
}

/// A pair as the candidate the jury judges.
fn candidate(pair: &PairLine, image: &Path, bytes: &[u8]) -> Candidate {
    let blake3 = Digest::of(bytes).hex();
    let extension = image
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    Candidate {
        id: Candidate::derive_id(&pair.domain, &pair.subcategory, &pair.question, &blake3),
        domain: pair.domain.clone(),
        subcategory: pair.subcategory.clone(),
        question: pair.question.clone(),
        image: ImageRef {
            path: image.display().to_string(),
            blake3,
            extension,
            bytes: bytes.len() as u64,
        },
        image_description: String::new(),
        safety_warning: pair.safety_warning.clone(),
        reference_answer: pair.reference_answer.clone(),
        provenance: Provenance {
            generator: "calibration".to_owned(),
            image_file: pair.image.clone(),
            origin: format!("{} ({}, {})", pair.id, pair.kind, pair.scenario),
            ..Provenance::default()
        },
        control_of: None,
        revision_of: None,
    }
}

fn ratio(numerator: usize, denominator: usize) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// `outcomes`: (should stop, stopped) per pair.
fn metrics(check: &str, outcomes: &[(bool, bool)]) -> CheckMetrics {
    let count = |should: bool, did: bool| outcomes.iter().filter(|o| **o == (should, did)).count();
    let (tp, fp) = (count(true, true), count(false, true));
    let (fn_, tn) = (count(true, false), count(false, false));
    CheckMetrics {
        check: check.to_owned(),
        n: outcomes.len(),
        positives: tp + fn_,
        flagged: tp + fp,
        true_positives: tp,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        false_positive_rate: ratio(fp, fp + tn),
    }
}

impl JuryCalibrationReport {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "jury calibration on {} ({} pairs, {} unjudged), quorum {}, jurors: {}",
            self.labels,
            self.pairs,
            self.unjudged,
            self.quorum,
            self.jurors.join(", ")
        );
        let _ = writeln!(
            out,
            "  a positive is a pair the check should stop; flagged = failed or split\n  {:<18} {:>4} {:>9} {:>7} {:>9} {:>6} {:>6}",
            "check", "n", "positive", "flagged", "precision", "recall", "fpr"
        );
        for m in &self.checks {
            let _ = writeln!(
                out,
                "  {:<18} {:>4} {:>9} {:>7} {:>9} {:>6} {:>6}",
                m.check,
                m.n,
                m.positives,
                m.flagged,
                rate(m.precision),
                rate(m.recall),
                rate(m.false_positive_rate)
            );
        }
        if let Some(first) = &self.first_unjudged {
            let _ = writeln!(
                out,
                "  {} pairs unjudged and not counted; first: {first}",
                self.unjudged
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_positive_is_a_pair_the_check_should_stop() {
        let m = metrics(
            "leakage",
            &[
                (true, true),
                (true, false),
                (false, true),
                (false, false),
                (false, false),
            ],
        );
        assert_eq!(
            (m.n, m.positives, m.flagged, m.true_positives),
            (5, 2, 2, 1)
        );
        assert_eq!(m.precision, Some(0.5));
        assert_eq!(m.recall, Some(0.5));
        assert_eq!(m.false_positive_rate, Some(1.0 / 3.0));
        assert_eq!(metrics("x", &[(false, false)]).recall, None);
    }
}
