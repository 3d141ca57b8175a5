//! `siuo calibrate`: how well the configured classifiers separate a labeled
//! set, per classifier, per category, and for each modality's combined
//! decision (`text-check`, `image-check`) exactly as the check stage decides.
//! A positive is "flagged unsafe".
//!
//! The labeled set must stay apart from anything a classifier learns from,
//! and the published SIUO questions must never be used here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use siuo_chain::calibration_store::check_digest;
pub use siuo_chain::calibration_store::{record, recorded_for_current_check, reusable};
use siuo_chain::project::Project;
pub use siuo_core::calibration_report::{
    CalibrationReport, ClassifierReport, Label, Metrics, Misclassified, RecordedCalibration, rate,
};
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::record::{ClassifierVerdict, Judgement};

/// One line of a labels file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabeledLine {
    #[serde(default)]
    text: Option<String>,
    /// Path relative to the labels file.
    #[serde(default)]
    image: Option<String>,
    label: Label,
    #[serde(default)]
    category: Option<String>,
}

enum Input {
    Text(String),
    Image(PathBuf),
}

struct Example {
    input: Input,
    label: Label,
    category: Option<String>,
}

/// Digest of everything a calibration's figures depend on: siuo's version,
/// the check config, each classifier's id, version and weights, the labels
/// file and every image it names.
pub fn key(project: &Project, labels: &Path) -> Result<String> {
    let panel = project.classifiers()?;
    let mut hasher = siuo_core::content_hash::ContentHasher::new("siuo.calibration.v1");
    hasher
        .str(env!("CARGO_PKG_VERSION"))
        .str(&check_digest(project));
    let text = panel
        .text
        .iter()
        .map(|c| ("text", c.id(), c.version(), c.weights_sha256()));
    let image = panel
        .image
        .iter()
        .map(|c| ("image", c.id(), c.version(), c.weights_sha256()));
    for (modality, id, version, weights) in text.chain(image) {
        hasher
            .str(modality)
            .str(id)
            .str(version)
            .str(weights.unwrap_or_default());
    }
    hasher.field(&input_file::read_bytes(labels)?);
    for example in read_labels(labels)? {
        if let Input::Image(path) = &example.input {
            hasher.field(&input_file::read_bytes(path)?);
        }
    }
    Ok(hasher.finish().hex())
}

/// Everything one classifier (or combined decision) did over the set.
struct Tally {
    version: String,
    results: Vec<(Outcome, Option<String>)>,
    took: Duration,
}

/// One example's result for one classifier (or combined decision).
#[derive(Clone, Copy)]
struct Outcome {
    label: Label,
    /// Judged unsafe or held for review: not released either way.
    flagged: bool,
    /// Judged unsafe outright: thrown away, not held for a person.
    rejected: bool,
    score: f64,
}

fn read_labels(path: &Path) -> Result<Vec<Example>> {
    let lines: Vec<LabeledLine> = input_file::read_jsonl(path)?;
    let base = path.parent().unwrap_or_else(|| Path::new(""));
    lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| {
            let invalid = |message: String| Error::InvalidRecord {
                path: path.to_owned(),
                record: format!("line {}", index + 1),
                message,
            };
            let input = match (line.text, line.image) {
                (Some(text), None) => Input::Text(text),
                (None, Some(image)) => {
                    let image_path = base.join(&image);
                    if !image_path.is_file() {
                        return Err(invalid(format!(
                            "image `{image}` not found at {}",
                            image_path.display()
                        )));
                    }
                    Input::Image(image_path)
                }
                _ => {
                    return Err(invalid(
                        "needs exactly one of `text` and `image`".to_owned(),
                    ));
                }
            };
            Ok(Example {
                input,
                label: line.label,
                category: line.category,
            })
        })
        .collect()
}

/// Runs every configured classifier over the labeled set; with `errors`,
/// the report lists every example the combined decision got wrong.
pub fn calibrate(project: &Project, labels: &Path, errors: bool) -> Result<CalibrationReport> {
    let mut misclassified = Vec::new();
    let examples = read_labels(labels)?;
    let classifiers = project.classifiers()?;
    // Keyed by (modality, classifier id), in first-seen order.
    let mut tallies: Vec<((String, String), Tally)> = Vec::new();
    let mut record = |modality: &str,
                      verdict: (&str, &str),
                      outcome: Outcome,
                      category: &Option<String>,
                      took: Duration| {
        let key = (modality.to_owned(), verdict.0.to_owned());
        let position = match tallies.iter().position(|(k, _)| *k == key) {
            Some(position) => position,
            None => {
                let tally = Tally {
                    version: verdict.1.to_owned(),
                    results: Vec::new(),
                    took: Duration::ZERO,
                };
                tallies.push((key, tally));
                tallies.len() - 1
            }
        };
        let tally = &mut tallies[position].1;
        tally.results.push((outcome, category.clone()));
        tally.took += took;
    };
    let texts: Vec<(&Example, &str)> = examples
        .iter()
        .filter_map(|e| match &e.input {
            Input::Text(text) => Some((e, text.as_str())),
            Input::Image(_) => None,
        })
        .collect();
    let mut images: Vec<(&Example, Vec<u8>)> = Vec::new();
    for example in &examples {
        if let Input::Image(path) = &example.input {
            images.push((example, input_file::read_bytes(path)?));
        }
    }
    // As the check stage shows them to the classifiers.
    let visible: Vec<String> = texts
        .iter()
        .map(|(_, t)| siuo_core::text_normal::visible(t))
        .collect();
    let text_inputs: Vec<&str> = visible.iter().map(String::as_str).collect();
    let image_inputs: Vec<&[u8]> = images.iter().map(|(_, b)| b.as_slice()).collect();
    let mut text_runs = Vec::new();
    if !text_inputs.is_empty() {
        for classifier in &classifiers.text {
            text_runs.push(timed(|| classifier.classify(&text_inputs)));
        }
    }
    let mut image_runs = Vec::new();
    if !image_inputs.is_empty() {
        for classifier in &classifiers.image {
            image_runs.push(timed(|| classifier.classify(&image_inputs)));
        }
    }
    let modalities = [
        (
            "text",
            "text-check",
            texts.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            text_runs,
        ),
        (
            "image",
            "image-check",
            images.iter().map(|(e, _)| *e).collect(),
            image_runs,
        ),
    ];
    for (modality, combined_id, examples, runs) in modalities {
        let mut per_example: Vec<Vec<ClassifierVerdict>> = vec![Vec::new(); examples.len()];
        // The combined decision costs what its classifiers cost together.
        let mut took_all = Duration::ZERO;
        for (verdicts, took) in runs {
            let verdicts = verdicts?;
            if verdicts.len() != examples.len() {
                return Err(Error::InvalidRecord {
                    path: labels.to_owned(),
                    record: format!("{} examples", examples.len()),
                    message: format!(
                        "a {modality} classifier returned {} verdicts; calibration needs one per example",
                        verdicts.len()
                    ),
                });
            }
            took_all += took;
            let each = took / verdicts.len().max(1) as u32;
            for ((example, verdict), all) in examples.iter().zip(verdicts).zip(&mut per_example) {
                let outcome = Outcome {
                    label: example.label,
                    flagged: !verdict.is_safe(),
                    rejected: verdict.judgement == Judgement::Unsafe,
                    score: verdict.unsafe_score,
                };
                let id = (verdict.classifier.as_str(), verdict.version.as_str());
                record(modality, id, outcome, &example.category, each);
                all.push(verdict);
            }
        }
        let each = took_all / examples.len().max(1) as u32;
        for (example, all) in examples.iter().zip(&per_example) {
            let (judgement, reasons) = classifiers.judge_modality(all);
            if errors && (judgement == Judgement::Safe) == (example.label == Label::Unsafe) {
                misclassified.push(Misclassified {
                    modality: modality.to_owned(),
                    input: match &example.input {
                        Input::Text(text) => text.clone(),
                        Input::Image(path) => path.display().to_string(),
                    },
                    label: example.label,
                    category: example.category.clone(),
                    judgement,
                    unsafe_score: all.iter().map(|v| v.unsafe_score).fold(0.0, f64::max),
                    reasons,
                });
            }
            let combined = Outcome {
                label: example.label,
                flagged: judgement != Judgement::Safe,
                rejected: judgement == Judgement::Unsafe,
                score: all.iter().map(|v| v.unsafe_score).fold(0.0, f64::max),
            };
            record(
                modality,
                (combined_id, "policy"),
                combined,
                &example.category,
                each,
            );
        }
    }
    let classifiers = tallies
        .into_iter()
        .map(|((modality, id), tally)| {
            let all: Vec<Outcome> = tally.results.iter().map(|(o, _)| *o).collect();
            let mut categories: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
            for (outcome, category) in &tally.results {
                if let Some(category) = category {
                    categories
                        .entry(category.clone())
                        .or_default()
                        .push(*outcome);
                }
            }
            ClassifierReport {
                id,
                modality,
                version: tally.version,
                metrics: metrics(&all),
                per_category: categories
                    .iter()
                    .map(|(c, o)| (c.clone(), metrics(o)))
                    .collect(),
                items_per_second: all.len() as f64 / tally.took.as_secs_f64().max(1e-9),
            }
        })
        .collect();
    Ok(CalibrationReport {
        // Quoted by release cards: never a directory of this machine.
        labels: project.config.release_name(labels),
        classifiers,
        errors: misclassified,
    })
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = work();
    (value, started.elapsed())
}

fn ratio(numerator: usize, denominator: usize) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

fn metrics(outcomes: &[Outcome]) -> Metrics {
    let count = |label: Label, flagged: bool| {
        outcomes
            .iter()
            .filter(|o| o.label == label && o.flagged == flagged)
            .count()
    };
    let (tp, fp) = (count(Label::Unsafe, true), count(Label::Safe, true));
    let (fn_, tn) = (count(Label::Unsafe, false), count(Label::Safe, false));
    let rejected_safe = outcomes
        .iter()
        .filter(|o| o.label == Label::Safe && o.rejected)
        .count();
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    Metrics {
        n: outcomes.len(),
        unsafe_examples: tp + fn_,
        flagged: tp + fp,
        precision,
        recall,
        f1,
        auroc: auroc(outcomes),
        false_positive_rate: ratio(fp, fp + tn),
        rejected: outcomes.iter().filter(|o| o.rejected).count(),
        false_rejection_rate: ratio(rejected_safe, fp + tn),
    }
}

/// Probability that a random unsafe example scores above a random safe one
/// (ties count half): the Mann-Whitney form of the area under the ROC curve.
fn auroc(outcomes: &[Outcome]) -> Option<f64> {
    let positives: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.label == Label::Unsafe)
        .map(|o| o.score)
        .collect();
    let negatives: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.label == Label::Safe)
        .map(|o| o.score)
        .collect();
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    let wins: f64 = positives
        .iter()
        .map(|p| {
            negatives
                .iter()
                .map(|n| {
                    if p > n {
                        1.0
                    } else if p == n {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        })
        .sum();
    Some(wins / (positives.len() * negatives.len()) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(label: Label, flagged: bool, score: f64) -> Outcome {
        Outcome {
            label,
            flagged,
            rejected: flagged,
            score,
        }
    }

    #[test]
    fn metrics_count_flagged_unsafe_as_positive() {
        let outcomes = [
            outcome(Label::Unsafe, true, 0.9),
            outcome(Label::Unsafe, false, 0.4),
            outcome(Label::Safe, true, 0.6),
            outcome(Label::Safe, false, 0.1),
            outcome(Label::Safe, false, 0.1),
        ];
        let m = metrics(&outcomes);
        assert_eq!((m.n, m.unsafe_examples, m.flagged), (5, 2, 2));
        assert_eq!(m.precision, Some(0.5));
        assert_eq!(m.recall, Some(0.5));
        assert_eq!(m.f1, Some(0.5));
        assert_eq!(m.false_positive_rate, Some(1.0 / 3.0));
        // Unsafe 0.9 beats all 3 safe; 0.4 beats two of them: 5 of 6 pairs.
        assert_eq!(m.auroc, Some(5.0 / 6.0));
    }

    #[test]
    fn rates_without_a_denominator_are_absent() {
        let m = metrics(&[outcome(Label::Safe, false, 0.0)]);
        assert_eq!((m.precision, m.recall, m.auroc), (None, None, None));
        assert_eq!(m.false_positive_rate, Some(0.0));
    }
}
