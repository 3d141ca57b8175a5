//! all-MiniLM-L6-v2 sentence embeddings, computed in-process on the CPU from
//! the model's own `model.safetensors` (a 6-layer BERT, hidden size 384, 12
//! heads) and `vocab.txt`, then mean-pooled and L2-normalized exactly as
//! sentence-transformers does.
//!
//! The forward pass is written out here rather than pulled from a second
//! inference engine: it is a few matrix products (ndarray's SIMD kernels,
//! already built for tract), and each engine adds minutes of build time. It must never load a file whose
//! sha256 was not verified by [`siuo_core::model_file`].

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Slice};
use safetensors::{Dtype, SafeTensors};

use super::wordpiece::WordPiece;

const HIDDEN: usize = 384;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const INTERMEDIATE: usize = 1536;
const LAYERS: usize = 6;
const LAYER_NORM_EPS: f32 = 1e-12;
/// sentence-transformers' `max_seq_length` for this model.
pub const MAX_TOKENS: usize = 256;
pub const DIMENSION: usize = HIDDEN;

/// `y = x·Wᵀ + b` with PyTorch's `[out, in]` weight layout.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

pub struct SentenceEncoder {
    tokenizer: WordPiece,
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    token_type_embedding: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    vocab_size: usize,
}

struct Tensors<'a> {
    file: SafeTensors<'a>,
}

impl Tensors<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let view = self
            .file
            .tensor(name)
            .map_err(|e| format!("tensor {name}: {e}"))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(format!(
                "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                view.dtype(),
                view.shape()
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn linear(&self, prefix: &str, inputs: usize, outputs: usize) -> Result<Linear, String> {
        Ok(Linear {
            weight: self.get(&format!("{prefix}.weight"), &[outputs, inputs])?,
            bias: self.get(&format!("{prefix}.bias"), &[outputs])?,
            inputs,
            outputs,
        })
    }

    fn norm(&self, prefix: &str) -> Result<LayerNorm, String> {
        Ok(LayerNorm {
            gamma: self.get(&format!("{prefix}.weight"), &[HIDDEN])?,
            beta: self.get(&format!("{prefix}.bias"), &[HIDDEN])?,
        })
    }
}

impl SentenceEncoder {
    /// From the bytes of `model.safetensors` and the text of `vocab.txt`.
    pub fn load(weights: &[u8], vocab: &str) -> Result<Self, String> {
        let tokenizer = WordPiece::from_vocab(vocab)?;
        let tensors = Tensors {
            file: SafeTensors::deserialize(weights).map_err(|e| format!("not safetensors: {e}"))?,
        };
        let vocab_size = vocab.lines().count();
        let layers = (0..LAYERS)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    query: tensors.linear(&format!("{p}.attention.self.query"), HIDDEN, HIDDEN)?,
                    key: tensors.linear(&format!("{p}.attention.self.key"), HIDDEN, HIDDEN)?,
                    value: tensors.linear(&format!("{p}.attention.self.value"), HIDDEN, HIDDEN)?,
                    attention_out: tensors.linear(
                        &format!("{p}.attention.output.dense"),
                        HIDDEN,
                        HIDDEN,
                    )?,
                    attention_norm: tensors.norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: tensors.linear(
                        &format!("{p}.intermediate.dense"),
                        HIDDEN,
                        INTERMEDIATE,
                    )?,
                    output: tensors.linear(&format!("{p}.output.dense"), INTERMEDIATE, HIDDEN)?,
                    output_norm: tensors.norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(SentenceEncoder {
            word_embeddings: tensors
                .get("embeddings.word_embeddings.weight", &[vocab_size, HIDDEN])?,
            position_embeddings: tensors
                .get("embeddings.position_embeddings.weight", &[512, HIDDEN])?,
            token_type_embedding: tensors
                .get("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?[..HIDDEN]
                .to_vec(),
            embedding_norm: tensors.norm("embeddings.LayerNorm")?,
            layers,
            vocab_size,
            tokenizer,
        })
    }

    /// The unit-length sentence embedding of `text`.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let ids = self.tokenizer.encode(text, MAX_TOKENS);
        let tokens = ids.len();
        let mut hidden = vec![0f32; tokens * HIDDEN];
        for (position, (&id, row)) in ids.iter().zip(hidden.chunks_exact_mut(HIDDEN)).enumerate() {
            let id = (id as usize).min(self.vocab_size - 1);
            let word = &self.word_embeddings[id * HIDDEN..(id + 1) * HIDDEN];
            let place = &self.position_embeddings[position * HIDDEN..(position + 1) * HIDDEN];
            for (i, value) in row.iter_mut().enumerate() {
                *value = word[i] + place[i] + self.token_type_embedding[i];
            }
        }
        layer_norm(&mut hidden, &self.embedding_norm);
        let mut scratch = Scratch::new(tokens);
        for layer in &self.layers {
            layer.forward(&mut hidden, tokens, &mut scratch);
        }
        let mut pooled = vec![0f32; HIDDEN];
        for row in hidden.chunks_exact(HIDDEN) {
            for (sum, value) in pooled.iter_mut().zip(row) {
                *sum += value;
            }
        }
        let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        pooled.iter_mut().for_each(|v| *v /= norm);
        pooled
    }

    /// Embeddings of many texts, spread over the available cores.
    pub fn embed_all(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        siuo_core::parallel::map(texts, |text| self.embed(text))
    }
}

/// Buffers reused across the layers of one forward pass.
struct Scratch {
    query: Vec<f32>,
    key: Vec<f32>,
    value: Vec<f32>,
    context: Vec<f32>,
    scores: Vec<f32>,
    projected: Vec<f32>,
    intermediate: Vec<f32>,
}

impl Scratch {
    fn new(tokens: usize) -> Self {
        Scratch {
            query: vec![0.0; tokens * HIDDEN],
            key: vec![0.0; tokens * HIDDEN],
            value: vec![0.0; tokens * HIDDEN],
            context: vec![0.0; tokens * HIDDEN],
            scores: vec![0.0; tokens * tokens],
            projected: vec![0.0; tokens * HIDDEN],
            intermediate: vec![0.0; tokens * INTERMEDIATE],
        }
    }
}

impl Layer {
    fn forward(&self, hidden: &mut [f32], tokens: usize, s: &mut Scratch) {
        self.query.apply(hidden, tokens, &mut s.query);
        self.key.apply(hidden, tokens, &mut s.key);
        self.value.apply(hidden, tokens, &mut s.value);
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let (Some(query), Some(key), Some(value), Some(mut context), Some(mut scores)) = (
            matrix(&s.query, tokens, HIDDEN),
            matrix(&s.key, tokens, HIDDEN),
            matrix(&s.value, tokens, HIDDEN),
            matrix_mut(&mut s.context, tokens, HIDDEN),
            matrix_mut(&mut s.scores, tokens, tokens),
        ) else {
            return;
        };
        for head in 0..HEADS {
            // ndarray's `s!` macro expands to code this crate forbids.
            let columns = Slice::from(head * HEAD_DIM..(head + 1) * HEAD_DIM);
            general_mat_mul(
                scale,
                &query.slice_axis(Axis(1), columns),
                &key.slice_axis(Axis(1), columns).t(),
                0.0,
                &mut scores,
            );
            for mut row in scores.rows_mut() {
                if let Some(row) = row.as_slice_mut() {
                    softmax(row);
                }
            }
            general_mat_mul(
                1.0,
                &scores,
                &value.slice_axis(Axis(1), columns),
                0.0,
                &mut context.slice_axis_mut(Axis(1), columns),
            );
        }
        self.attention_out
            .apply(&s.context, tokens, &mut s.projected);
        add_and_norm(hidden, &s.projected, &self.attention_norm);
        self.intermediate.apply(hidden, tokens, &mut s.intermediate);
        s.intermediate.iter_mut().for_each(|v| *v = gelu(*v));
        self.output.apply(&s.intermediate, tokens, &mut s.projected);
        add_and_norm(hidden, &s.projected, &self.output_norm);
    }
}

impl Linear {
    fn apply(&self, input: &[f32], tokens: usize, output: &mut [f32]) {
        for row in output.chunks_exact_mut(self.outputs) {
            row.copy_from_slice(&self.bias);
        }
        let (Some(input), Some(weight), Some(mut output)) = (
            matrix(input, tokens, self.inputs),
            matrix(&self.weight, self.outputs, self.inputs),
            matrix_mut(output, tokens, self.outputs),
        ) else {
            return;
        };
        // PyTorch stores the weight as [out, in]: output += input · weightᵀ.
        general_mat_mul(1.0, &input, &weight.t(), 1.0, &mut output);
    }
}

/// A row-major view; `None` only if the buffer has the wrong size, which
/// the fixed shapes of this model rule out.
fn matrix(data: &[f32], rows: usize, columns: usize) -> Option<ArrayView2<'_, f32>> {
    ArrayView2::from_shape((rows, columns), data).ok()
}

fn matrix_mut(data: &mut [f32], rows: usize, columns: usize) -> Option<ArrayViewMut2<'_, f32>> {
    ArrayViewMut2::from_shape((rows, columns), data).ok()
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

fn add_and_norm(hidden: &mut [f32], residual: &[f32], norm: &LayerNorm) {
    hidden.iter_mut().zip(residual).for_each(|(h, r)| *h += r);
    layer_norm(hidden, norm);
}

fn layer_norm(hidden: &mut [f32], norm: &LayerNorm) {
    for row in hidden.chunks_exact_mut(HIDDEN) {
        let mean = row.iter().sum::<f32>() / HIDDEN as f32;
        let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / HIDDEN as f32;
        let inverse = 1.0 / (variance + LAYER_NORM_EPS).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            *v = (*v - mean) * inverse * norm.gamma[i] + norm.beta[i];
        }
    }
}

/// BERT's exact GELU, `x·Φ(x)`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// Abramowitz and Stegun 7.1.26 (error below 1.5e-7), in f64.
fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (sign * (1.0 - poly * (-x * x).exp())) as f32
}

/// Cosine of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use siuo_core::model_file::{MINILM_VOCAB, MINILM_WEIGHTS, checkout_models_dir};

    #[derive(serde::Deserialize)]
    struct Reference {
        sentences: Vec<ReferenceSentence>,
    }

    #[derive(serde::Deserialize)]
    struct ReferenceSentence {
        text: String,
        token_ids: Vec<u32>,
        embedding: Vec<f32>,
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, expected) in [
            (0.0, 0.0),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
        ] {
            assert!((erf(x) - expected).abs() < 1e-6, "erf({x})");
        }
    }

    /// Tests that load the embedded model files (`./justw test-models`).
    mod models {
        use super::*;

        /// Compares with an independent implementation: an int8 ONNX export of
        /// the same model run by onnxruntime, with the model's own tokenizer
        /// (`tests/fixtures/minilm-reference.json`). int8 rounding bounds the
        /// agreement; an error in the forward pass would not come near it.
        #[test]
        #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
        fn embeddings_match_an_independent_implementation() -> Result<(), String> {
            let dir = checkout_models_dir();
            let weights = MINILM_WEIGHTS.load(&dir).map_err(|e| e.to_string())?;
            let vocab = MINILM_VOCAB.load(&dir).map_err(|e| e.to_string())?;
            let encoder = SentenceEncoder::load(&weights, &String::from_utf8_lossy(&vocab))?;
            let fixture = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/minilm-reference.json"
            );
            let text = std::fs::read_to_string(fixture).map_err(|e| e.to_string())?;
            let reference: Reference = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            for sentence in &reference.sentences {
                assert_eq!(
                    encoder.tokenizer.encode(&sentence.text, MAX_TOKENS),
                    sentence.token_ids
                );
                let similarity = cosine(&encoder.embed(&sentence.text), &sentence.embedding);
                assert!(similarity > 0.99, "{}: cosine {similarity}", sentence.text);
            }
            let dog = encoder.embed("Can I feed these to my dog as a treat?");
            let fox = encoder.embed("The quick brown fox jumps over the lazy dog.");
            assert!(cosine(&dog, &fox) < 0.9);
            Ok(())
        }
    }
}
