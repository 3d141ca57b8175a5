//! Throughput of the embedded classifiers on this machine: texts/s of
//! `minilm` (the shipped calibration questions) and images/s of
//! `image-safety` (the starter library photographs at their own sizes),
//! one batch over every core as the check stage runs them, plus the
//! single-core rate. Prints the median of several repeats.
//!
//! `just bench-classifiers` (release build; not part of CI).

use std::path::Path;
use std::time::Instant;

use siuo_chain::config::{ImageModelConfig, MiniLmConfig};
use siuo_chain::image_classifier::ImageClassifier;
use siuo_chain::image_classifier::onnx_model::OnnxImageClassifier;
use siuo_chain::text_classifier::TextClassifier;
use siuo_chain::text_classifier::minilm::MiniLmClassifier;

const REPEATS: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Items per second of `work` over `items` items, median of the repeats.
fn rate(items: usize, mut work: impl FnMut()) -> f64 {
    median(
        (0..REPEATS)
            .map(|_| {
                let started = Instant::now();
                work();
                items as f64 / started.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let models = root.join(".models");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let labels = std::fs::read_to_string(root.join("prompts/calibration/text.jsonl"))?;
    let texts: Vec<String> = labels
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_owned))
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let started = Instant::now();
    let minilm = MiniLmClassifier::load(&MiniLmConfig::default(), &root, &models)?;
    let load = started.elapsed().as_secs_f64();
    let batch = rate(texts.len(), || {
        let _ = minilm.classify(&texts);
    });
    let single = rate(texts.len(), || {
        for text in &texts {
            let _ = minilm.classify(&[text]);
        }
    });
    let tokens: f64 = texts
        .iter()
        .map(|t| t.split_whitespace().count() as f64)
        .sum::<f64>()
        / texts.len() as f64;
    println!(
        "minilm        {:>7.1} texts/s on {cores} cores (one at a time: {:>6.1}/s); {} texts of {tokens:.1} words on average; load {load:.2} s (target: 100 texts/s)",
        batch,
        single,
        texts.len()
    );

    let library = root.join("prompts/library/starter");
    let mut images = Vec::new();
    for entry in std::fs::read_dir(&library)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "png" || e == "jpg") {
            images.push(std::fs::read(path)?);
        }
    }
    images.sort();
    // Four copies of each, so the batch keeps every core busy.
    let images: Vec<&[u8]> = images
        .iter()
        .cycle()
        .take(images.len() * 4)
        .map(Vec::as_slice)
        .collect();
    let started = Instant::now();
    let image_safety = OnnxImageClassifier::image_safety(&ImageModelConfig::default(), &models)?;
    let load = started.elapsed().as_secs_f64();
    let batch = rate(images.len(), || {
        let _ = image_safety.classify(&images);
    });
    let single = rate(images.len(), || {
        for image in &images {
            let _ = image_safety.classify(&[image]);
        }
    });
    println!(
        "image-safety  {:>7.1} images/s on {cores} cores (one at a time: {:>6.1}/s); {} decodes of the 9 starter photographs (300 to 600 px a side): decode, resize, inference; load {load:.2} s (target: 15 images/s)",
        batch,
        single,
        images.len()
    );
    Ok(())
}
