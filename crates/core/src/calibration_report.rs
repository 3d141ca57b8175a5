//! What `siuo calibrate` measured, as records: the report per classifier
//! and category, its rendering, and the shape of the recorded reports under
//! `raw/calibration/` that dataset cards quote. It never runs a classifier.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::record::Judgement;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Safe,
    Unsafe,
}

/// Counts and rates; a rate is `None` where its denominator is zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    /// Examples labeled unsafe.
    pub unsafe_examples: usize,
    pub flagged: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub auroc: Option<f64>,
    pub false_positive_rate: Option<f64>,
    /// Examples judged unsafe outright (flagged, less those held for review).
    #[serde(default)]
    pub rejected: usize,
    /// Share of safe examples thrown away outright; the rest of the false
    /// positives are held for a person to review.
    #[serde(default)]
    pub false_rejection_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierReport {
    pub id: String,
    pub modality: String,
    pub version: String,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub per_category: BTreeMap<String, Metrics>,
    /// Examples classified per second, the whole set given as one batch.
    pub items_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub labels: String,
    pub classifiers: Vec<ClassifierReport>,
    /// With `--errors`: what the combined decision got wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Misclassified>,
}

/// An example the combined decision (`text-check`, `image-check`) got
/// wrong: a safe one flagged, or an unsafe one passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Misclassified {
    pub modality: String,
    /// The text, or the image's path.
    pub input: String,
    pub label: Label,
    pub category: Option<String>,
    pub judgement: Judgement,
    pub unsafe_score: f64,
    pub reasons: Vec<String>,
}

/// `raw/calibration/<labels file name>.json`: the last calibration on a
/// labeled set, and the check settings it measured, so a release's dataset
/// card can quote the figures of exactly the classifiers that passed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCalibration {
    /// blake3 of the `check` config section.
    pub check_blake3: String,
    pub labels_blake3: String,
    /// [`key`] of the calibration: the same key gives the same figures, so
    /// the report is reused instead of measured again.
    #[serde(default)]
    pub key_blake3: String,
    pub report: CalibrationReport,
}

/// A rate with three decimals, or `-` where it is undefined.
pub fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

impl CalibrationReport {
    pub fn render(&self) -> String {
        let show = rate;
        let mut out = format!("calibration on {}\n", self.labels);
        let _ = writeln!(
            out,
            "{:<13}{:<7}{:>5}{:>8}{:>8}{:>11}{:>8}{:>7}{:>7}{:>7}{:>10}",
            "classifier",
            "input",
            "n",
            "unsafe",
            "flagged",
            "precision",
            "recall",
            "f1",
            "auroc",
            "fpr",
            "items/s"
        );
        for report in &self.classifiers {
            let m = &report.metrics;
            let _ = writeln!(
                out,
                "{:<13}{:<7}{:>5}{:>8}{:>8}{:>11}{:>8}{:>7}{:>7}{:>7}{:>10.0}",
                report.id,
                report.modality,
                m.n,
                m.unsafe_examples,
                m.flagged,
                show(m.precision),
                show(m.recall),
                show(m.f1),
                show(m.auroc),
                show(m.false_positive_rate),
                report.items_per_second
            );
            for (category, m) in &report.per_category {
                let rate = if m.unsafe_examples > 0 {
                    format!("recall {}", show(m.recall))
                } else if m.flagged > m.rejected {
                    format!(
                        "false positive rate {} ({} rejected, rate {}; {} held for review)",
                        show(m.false_positive_rate),
                        m.rejected,
                        show(m.false_rejection_rate),
                        m.flagged - m.rejected
                    )
                } else {
                    match m.flagged {
                        0 => format!("false positive rate {}", show(m.false_positive_rate)),
                        _ => format!(
                            "false positive rate {}, all rejected",
                            show(m.false_positive_rate)
                        ),
                    }
                };
                let _ = writeln!(
                    out,
                    "    {category}: {} of {} flagged, {rate}",
                    m.flagged, m.n
                );
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(
                out,
                "misclassified by the combined decision ({}):",
                self.errors.len()
            );
            for e in &self.errors {
                let _ = writeln!(
                    out,
                    "  {:<6} {:<7} {:>5.3} {:<16} {:?}{}",
                    match e.label {
                        Label::Safe => "safe",
                        Label::Unsafe => "unsafe",
                    },
                    match e.judgement {
                        Judgement::Safe => "passed",
                        Judgement::Review => "review",
                        Judgement::Unsafe => "reject",
                    },
                    e.unsafe_score,
                    e.category.as_deref().unwrap_or("-"),
                    e.input,
                    if e.reasons.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", e.reasons.join(", "))
                    }
                );
            }
        }
        out
    }
}
