//! The calibrations recorded under `raw/calibration/`: the last report of
//! each labeled set with the check settings it measured, reused while
//! nothing it measured changed, and quoted by the dataset card of every
//! release made with those settings.

use std::path::{Path, PathBuf};

use crate::project::Project;
use siuo_core::calibration_report::{CalibrationReport, RecordedCalibration};
use siuo_core::error::Result;
use siuo_core::input_file;

fn recorded_dir(project: &Project) -> PathBuf {
    project.raw().join("calibration")
}

pub fn check_digest(project: &Project) -> String {
    siuo_core::content_hash::digest_of(&project.settings().check).hex()
}

fn recorded_path(project: &Project, labels: &Path) -> PathBuf {
    let name = labels
        .file_name()
        .map_or_else(|| "labels".to_owned(), |n| n.to_string_lossy().into_owned());
    recorded_dir(project).join(format!("{name}.json"))
}

/// The recorded report of this exact calibration (same `key`), if any.
pub fn reusable(project: &Project, labels: &Path, key: &str) -> Result<Option<CalibrationReport>> {
    let path = recorded_path(project, labels);
    if !path.is_file() {
        return Ok(None);
    }
    let recorded: RecordedCalibration = input_file::read_json(&path)?;
    Ok((recorded.key_blake3 == key).then_some(recorded.report))
}

/// Keeps the report for the dataset cards of later releases.
pub fn record(
    project: &Project,
    labels: &Path,
    key: &str,
    report: &CalibrationReport,
) -> Result<()> {
    let recorded = RecordedCalibration {
        check_blake3: check_digest(project),
        labels_blake3: siuo_core::content_hash::Digest::of(&input_file::read_bytes(labels)?).hex(),
        key_blake3: key.to_owned(),
        report: report.clone(),
    };
    siuo_core::atomic_file::write_json(&recorded_path(project, labels), &recorded)
}

/// Recorded calibrations of the current check settings, by labels file name.
pub fn recorded_for_current_check(project: &Project) -> Result<Vec<CalibrationReport>> {
    let dir = recorded_dir(project);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let current = check_digest(project);
    let mut reports = Vec::new();
    for (name, path) in input_file::files_under(&dir)? {
        if !name.ends_with(".json") {
            continue;
        }
        let recorded: RecordedCalibration = input_file::read_json(&path)?;
        if recorded.check_blake3 == current {
            reports.push(recorded.report);
        }
    }
    Ok(reports)
}
