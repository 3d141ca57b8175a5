//! Structural image check: the image decodes fully, has sane dimensions and
//! is not blank or near-uniform. It says nothing about content safety; a
//! model-based classifier adds that behind the same trait.

use std::collections::BTreeMap;

use image::DynamicImage;

use super::ImageClassifier;
use crate::image_classifier::config::ValidatorConfig;
use siuo_core::error::Result;
use siuo_core::pixels;
use siuo_core::record::{ClassifierVerdict, Judgement};

pub struct ImageValidator {
    settings: ValidatorConfig,
    version: String,
}

impl ImageValidator {
    pub fn new(settings: ValidatorConfig) -> Self {
        let version = format!(
            "settings:{}",
            siuo_core::content_hash::digest_of(&settings).short(16)
        );
        ImageValidator { settings, version }
    }

    fn problems(&self, image: &DynamicImage, stddev: f64) -> Vec<(&'static str, String)> {
        let (w, h) = (image.width(), image.height());
        let s = &self.settings;
        let mut problems = Vec::new();
        if w.min(h) < s.min_side {
            problems.push((
                "too-small",
                format!("{w}x{h} is smaller than {} px", s.min_side),
            ));
        }
        if w.max(h) > s.max_side {
            problems.push((
                "too-large",
                format!("{w}x{h} is larger than {} px", s.max_side),
            ));
        }
        let ratio = f64::from(w.max(h)) / f64::from(w.min(h).max(1));
        if ratio > s.max_aspect_ratio {
            problems.push((
                "aspect-ratio",
                format!("aspect ratio {ratio:.1} exceeds {}", s.max_aspect_ratio),
            ));
        }
        if stddev < s.min_luma_stddev {
            problems.push((
                "near-uniform",
                format!(
                    "luma standard deviation {stddev:.2} is below {} (blank or near-uniform)",
                    s.min_luma_stddev
                ),
            ));
        }
        problems
    }
}

fn luma_stddev(image: &DynamicImage) -> f64 {
    let luma = image.to_luma8();
    let n = luma.as_raw().len().max(1) as f64;
    let mean = luma.as_raw().iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    let variance = luma
        .as_raw()
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>()
        / n;
    variance.sqrt()
}

impl ImageClassifier for ImageValidator {
    fn id(&self) -> &str {
        "validator"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn classify(&self, images: &[&[u8]]) -> Result<Vec<ClassifierVerdict>> {
        Ok(images.iter().map(|bytes| self.judge(bytes)).collect())
    }
}

impl ImageValidator {
    pub fn judge(&self, bytes: &[u8]) -> ClassifierVerdict {
        let verdict = |scores, reasons: Vec<String>, detail: String| ClassifierVerdict {
            classifier: self.id().to_owned(),
            version: self.version.clone(),
            scores,
            // A structural check has no graded score: failing is certain.
            unsafe_score: if reasons.is_empty() { 0.0 } else { 1.0 },
            weights_sha256: None,
            judgement: if reasons.is_empty() {
                Judgement::Safe
            } else {
                Judgement::Unsafe
            },
            reasons,
            detail,
        };
        // The declared size first: a decompression bomb is refused unread.
        if let Ok((w, h)) = pixels::dimensions(bytes)
            && w.max(h) > self.settings.max_side
        {
            let scores = BTreeMap::from([
                ("width".to_owned(), f64::from(w)),
                ("height".to_owned(), f64::from(h)),
            ]);
            return verdict(
                scores,
                vec!["validator:too-large".to_owned()],
                format!(
                    "{w}x{h} is larger than {} px (not decoded)",
                    self.settings.max_side
                ),
            );
        }
        let image = match pixels::decode(bytes) {
            Ok(image) => image,
            Err(error) => {
                return verdict(BTreeMap::new(), vec!["validator:decode".to_owned()], error);
            }
        };
        let stddev = luma_stddev(&image);
        let scores = BTreeMap::from([
            ("width".to_owned(), f64::from(image.width())),
            ("height".to_owned(), f64::from(image.height())),
            ("luma_stddev".to_owned(), (stddev * 1000.0).round() / 1000.0),
        ]);
        let problems = self.problems(&image, stddev);
        let reasons = problems
            .iter()
            .map(|(code, _)| format!("validator:{code}"))
            .collect();
        let detail = if problems.is_empty() {
            format!("{}x{} decoded", image.width(), image.height())
        } else {
            problems
                .into_iter()
                .map(|(_, d)| d)
                .collect::<Vec<_>>()
                .join("; ")
        };
        verdict(scores, reasons, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage};
    use std::io::Cursor;

    fn png(image: &RgbImage) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        let _ = image.write_to(&mut bytes, ImageFormat::Png);
        bytes.into_inner()
    }

    fn validator() -> ImageValidator {
        ImageValidator::new(ValidatorConfig::default())
    }

    #[test]
    fn textured_image_passes() {
        let image = RgbImage::from_fn(128, 96, |x, y| {
            Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) % 256) as u8])
        });
        let verdict = validator().judge(&png(&image));
        assert!(verdict.is_safe(), "{verdict:?}");
        assert_eq!(verdict.scores.get("width"), Some(&128.0));
    }

    #[test]
    fn a_declared_size_above_max_side_is_refused_before_decoding() {
        let image = RgbImage::from_fn(300, 200, |x, y| Rgb([x as u8, y as u8, 9]));
        let small = ImageValidator::new(ValidatorConfig {
            max_side: 256,
            ..ValidatorConfig::default()
        });
        let verdict = small.judge(&png(&image));
        assert_eq!(verdict.reasons, vec!["validator:too-large".to_owned()]);
        assert_eq!(
            verdict.detail,
            "300x200 is larger than 256 px (not decoded)"
        );
        // No luma measure: the pixels were never decoded.
        assert!(!verdict.scores.contains_key("luma_stddev"));
    }

    #[test]
    fn truncated_image_fails_to_decode() {
        let image = RgbImage::from_fn(128, 128, |x, y| Rgb([x as u8, y as u8, 7]));
        let bytes = png(&image);
        let verdict = validator().judge(&bytes[..bytes.len() / 2]);
        assert!(!verdict.is_safe());
        assert_eq!(verdict.reasons, vec!["validator:decode".to_owned()]);
    }

    #[test]
    fn blank_and_tiny_images_fail() {
        let blank = RgbImage::from_pixel(200, 200, Rgb([250, 250, 250]));
        assert_eq!(
            validator().judge(&png(&blank)).reasons,
            vec!["validator:near-uniform".to_owned()]
        );
        let tiny = RgbImage::from_fn(10, 10, |x, _| Rgb([(x * 25) as u8, 0, 0]));
        assert!(
            validator()
                .judge(&png(&tiny))
                .reasons
                .contains(&"validator:too-small".to_owned())
        );
        assert!(!validator().judge(b"not an image at all").is_safe());
    }
}
