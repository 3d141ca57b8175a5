//! Near-duplicate image detection at scale: builds a set of distinct
//! synthetic scenes plus the six edited copies of each (half size, JPEG
//! quality 35, 90% crop, brighter, text overlay, mirror), then measures
//! precision and recall of the duplicate pairs found, throughput and peak
//! RSS for siuo's index (the dedupe stage's `CaseIndex`: multi-region pHash
//! in BK-trees) and, in the same
//! run, for imagededup's PHash (`crates/chain/benches/dedupe_imagededup.py`),
//! both at Hamming distance 10, and prints them side by side.
//!
//! `just bench-dedupe [ORIGINALS]` (release build; not part of CI). Each
//! tool runs in its own process, so peak RSS is its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, Rgb, RgbImage};
use siuo_chain::config::NearDedupeConfig;
use siuo_chain::similarity::case_index::{CaseIndex, IndexedCase};
use siuo_chain::similarity::image_hash::{self, ImageHashes, edits};
use siuo_core::random::SplitMix64;
use siuo_core::record::DuplicateOf;

const RADIUS: u32 = 10;

fn scene(seed: u64) -> RgbImage {
    let random = SplitMix64::new(seed.wrapping_mul(0x9E37_79B9) | 1);
    let next = |n: u64| (random.next_u64() % n) as u32;
    let (a, b) = (
        [next(256), next(256), next(256)],
        [next(256), next(256), next(256)],
    );
    let mut image = RgbImage::from_fn(320, 240, |x, y| {
        let t = (x + y) as f32 / 560.0;
        let mix = |i: usize| (a[i] as f32 * (1.0 - t) + b[i] as f32 * t) as u8;
        Rgb([mix(0), mix(1), mix(2)])
    });
    for _ in 0..12 {
        let (x0, y0, w, h) = (next(300), next(220), 10 + next(120), 10 + next(100));
        let colour = Rgb([next(256) as u8, next(256) as u8, next(256) as u8]);
        let ellipse = next(2) == 0;
        for y in y0..(y0 + h).min(240) {
            for x in x0..(x0 + w).min(320) {
                let (dx, dy) = (
                    (x as f32 - x0 as f32 - w as f32 / 2.0) / (w as f32 / 2.0),
                    (y as f32 - y0 as f32 - h as f32 / 2.0) / (h as f32 / 2.0),
                );
                if !ellipse || dx * dx + dy * dy <= 1.0 {
                    image.put_pixel(x, y, colour);
                }
            }
        }
    }
    image
}

fn save_jpeg(image: &DynamicImage, path: &Path) {
    let mut bytes = Vec::new();
    let encoded = JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&image.to_rgb8());
    if encoded.is_ok() {
        let _ = std::fs::write(path, bytes);
    }
}

/// Writes `originals` groups of 7 images unless the folder already has them.
fn build_set(dir: &Path, originals: u64) -> usize {
    let expected = (originals * 7) as usize;
    let present = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    if present == expected {
        return expected;
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::create_dir_all(dir);
    let seeds: Vec<u64> = (0..originals).collect();
    siuo_core::parallel::map(&seeds, |seed| {
        let original = DynamicImage::ImageRgb8(scene(*seed));
        save_jpeg(&original, &dir.join(format!("g{seed:05}-original.jpg")));
        for kind in edits::KINDS {
            save_jpeg(
                &edits::apply(&original, kind),
                &dir.join(format!("g{seed:05}-{kind}.jpg")),
            );
        }
    });
    expected
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// siuo's side, in this process: hash every file (all cores, one image in
/// memory per core), index, and report every pair within the radius.
fn measure(dir: &Path) -> serde_json::Value {
    let started = Instant::now();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let hashes: Vec<Option<ImageHashes>> = siuo_core::parallel::map(&files, |path| {
        let bytes = std::fs::read(path).ok()?;
        let image = siuo_core::pixels::decode(&bytes).ok()?;
        Some(image_hash::hashes(&image))
    });
    // The dedupe stage's own index, holding every image (the stage holds
    // only kept cases), so every near pair is found.
    let mut index = CaseIndex::new(NearDedupeConfig {
        image_max_distance: RADIUS,
        ..NearDedupeConfig::default()
    });
    let mut items = Vec::new();
    for (item, hash) in hashes.iter().enumerate() {
        if let Some(image) = hash {
            let reference = DuplicateOf::Run {
                candidate_id: item.to_string(),
            };
            index.insert(IndexedCase {
                reference,
                image: *image,
                question: Vec::new(),
            });
            items.push((item, *image));
        }
    }
    // Read-only queries, spread over the cores like the hashing. Indexes
    // in the tree are positions in `items`.
    let found: Vec<Vec<(usize, usize)>> = siuo_core::parallel::map(&items, |(item, image)| {
        index
            .near_images(image)
            .into_iter()
            .map(|position| items[position].0)
            // The regions compared are not symmetric: keep a pair found
            // from either side.
            .filter(|other| other != item)
            .map(|other| ((*item).min(other), (*item).max(other)))
            .collect()
    });
    let pairs: BTreeSet<(usize, usize)> = found.into_iter().flatten().collect();
    let seconds = started.elapsed().as_secs_f64();
    let group = |i: usize| {
        files[i]
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('-').next())
            .unwrap_or("")
            .to_owned()
    };
    let true_positives = pairs.iter().filter(|(a, b)| group(*a) == group(*b)).count();
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..files.len() {
        *sizes.entry(group(i)).or_default() += 1;
    }
    let true_pairs: usize = sizes.values().map(|n| n * (n - 1) / 2).sum();
    serde_json::json!({
        "tool": "siuo near dedupe",
        "images": files.len(),
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "pairs_found": pairs.len(),
        "precision": true_positives as f64 / pairs.len().max(1) as f64,
        "recall": true_positives as f64 / true_pairs.max(1) as f64,
    })
}

fn run_json(command: &mut Command) -> Result<serde_json::Value, String> {
    let output = command.output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("{e}: {text}"))
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("measure") {
        let dir = args.get(1).ok_or("measure DIR")?;
        println!("{}", measure(Path::new(dir)));
        return Ok(());
    }
    let originals: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1500);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("target/bench-dedupe/images");
    let started = Instant::now();
    let images = build_set(&dir, originals);
    eprintln!(
        "{images} images ({originals} scenes × 7) in {} ({:.0} s)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let siuo = run_json(Command::new(exe).arg("measure").arg(&dir))?;
    let python = root.join(".venv-bench/bin/python");
    let imagededup = run_json(
        Command::new(python)
            .arg(root.join("crates/chain/benches/dedupe_imagededup.py"))
            .arg(&dir)
            .arg(RADIUS.to_string()),
    )?;
    println!(
        "near-duplicate images: {images} = {originals} scenes + 6 edits each, Hamming radius {RADIUS}"
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>10} {:>12}",
        "tool", "precision", "recall", "images/s", "seconds", "peak RSS MB"
    );
    for result in [&siuo, &imagededup] {
        let number = |key: &str| result[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<26} {:>9.4} {:>9.4} {:>9.1} {:>10.2} {:>12.0}",
            result["tool"].as_str().unwrap_or("?"),
            number("precision"),
            number("recall"),
            number("images") / number("seconds"),
            number("seconds"),
            number("peak_rss_mb"),
        );
    }
    let speedup = imagededup["seconds"].as_f64().unwrap_or(f64::NAN)
        / siuo["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "siuo / imagededup throughput: {speedup:.1}× (target: at least 10× at equal or better recall)"
    );
    Ok(())
}
