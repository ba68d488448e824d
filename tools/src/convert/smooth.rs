//! SmoothQuant-style scale migration for int8 files (Xiao et al., 2022): a few input features
//! of each linear layer carry activations far larger than the rest (LayerNorm outliers, GELU
//! spikes), which per-token activation quantisation pays for on every feature of the token.
//! For each input feature `j` the converter picks `s_j = max|x_j|^a / max|W[:, j]|^(1 - a)`
//! (`a = ALPHA`), divides the activations by `s_j` (the file's `input_scale = 1 / s_j`, which
//! the int8 GEMM multiplies each row by before quantising it) and multiplies the weights'
//! column `j` by it, so the product is unchanged and both sides are easier to quantise.
//!
//! `max|x_j|` is measured by running the f32 model (the fast path) on the calibration texts
//! ([`crate::CORPUS`]: sentences of Python's documentation, none of them the reference
//! sentences the accuracy is measured on). Query, key and value share one input, so they share
//! one `s` (from the largest of their three weight columns). Only the encoder's linear layers
//! are smoothed; the pooler and the heads are quantised as they are.
//!
//! Measured on all-MiniLM-L6-v2 (48 reference sentences, min cosine to sentence-transformers,
//! asymmetric per-token activations): 0.99283 without, 0.9968 with (a = 0.4: 0.9949, 0.6:
//! 0.9941, in a PyTorch simulation of the same arithmetic that reproduces berth's figures).

use berth::config::{ModelConfig, TokenizerConfig};
use berth::fast::{FastModel, InputRanges, Workspace};
use berth::format::{BerthFile, TensorData};
use berth::reference::Inputs;
use berth::tokenizer::{EncodeOptions, Tokenizer};

use super::ConvertError;

/// The migration strength: 0 leaves the activations alone, 1 moves all their range into the
/// weights. 0.5 (the paper's default for BERT-sized models) was best on MiniLM.
pub const ALPHA: f64 = 0.5;

/// How many calibration texts, and the longest each may be (in tokens).
const TEXTS: usize = 64;
const MAX_TOKENS: usize = 128;

/// What calibration ran on, for the conversion report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    pub texts: usize,
    pub tokens: usize,
}

/// Runs the f32 model on the calibration texts and returns every encoder linear layer's input
/// range per feature. `tensors` are the model's tensors at f32 (any layout).
pub fn calibrate(
    config: &ModelConfig,
    tokenizer: &TokenizerConfig,
    tensors: &[TensorData],
) -> Result<(InputRanges, Calibration), ConvertError> {
    let bytes = berth::format::encode(config, Some(tokenizer), tensors)?;
    let file = BerthFile::from_bytes(&bytes)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = FastModel::with_threads(&file, threads)?;
    let tok = Tokenizer::new(tokenizer);
    let opts = EncodeOptions {
        max_length: Some(MAX_TOKENS.min(tok.max_length())),
        ..EncodeOptions::default()
    };
    let mut ranges = InputRanges::default();
    let mut ws = Workspace::default();
    let mut cal = Calibration {
        texts: 0,
        tokens: 0,
    };
    for line in crate::CORPUS.lines().take(TEXTS) {
        let Ok(e) = tok.encode(line, &opts) else {
            continue;
        };
        let ids: Vec<i64> = e.ids.iter().map(|&i| i64::from(i)).collect();
        let inputs = Inputs {
            batch: 1,
            seq: ids.len(),
            input_ids: &ids,
            attention_mask: None,
            token_type_ids: None,
        };
        model
            .observe_input_ranges(&inputs, &mut ws, &mut ranges)
            .map_err(berth::Error::from)?;
        cal.texts += 1;
        cal.tokens += ids.len();
    }
    Ok((ranges, cal))
}

/// The range `s` is held to, so that no migrated weight or scaled activation can leave f32's
/// range (however extreme a checkpoint's values): 2^-20 ..= 2^20.
const S_LIMIT: f64 = (1u64 << 20) as f64;

/// `s_j` for input feature `j` of a linear layer from the activations' range `x_max[j]` and the
/// largest weight magnitude in column `j` (over every weight sharing the input), or 1 where
/// either is 0 (a feature that never fires, or weights that ignore it); within
/// `2^-20 ..= 2^20`.
pub fn factors(x_max: &[f32], w_max: &[f32]) -> Vec<f64> {
    x_max
        .iter()
        .zip(w_max)
        .map(|(&x, &w)| {
            if x > 0.0 && w > 0.0 {
                let s = f64::from(x).powf(ALPHA) / f64::from(w).powf(1.0 - ALPHA);
                s.clamp(1.0 / S_LIMIT, S_LIMIT)
            } else {
                1.0
            }
        })
        .collect()
}

/// The largest magnitude in each column of row-major `n x k` weights, folded into `acc`.
pub fn fold_column_max(acc: &mut [f32], w: &[f32]) {
    for row in w.chunks_exact(acc.len()) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a = a.max(v.abs());
        }
    }
}

/// Applies the migration to a linear layer's row-major weights (`n x k`): returns the input
/// scales `1 / s_j` (f32) and multiplies column `j` by the f32 `1 / input_scale_j`, so that
/// `input_scale_j * w'[i][j]` is `w[i][j]` to one rounding.
pub fn migrate(w: &mut [f32], s: &[f64]) -> Vec<f32> {
    let input_scale: Vec<f32> = s.iter().map(|&s| (1.0 / s) as f32).collect();
    for row in w.chunks_exact_mut(s.len()) {
        for (v, m) in row.iter_mut().zip(&input_scale) {
            *v /= m;
        }
    }
    input_scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_leaves_the_product_unchanged() {
        let w0 = vec![0.5f32, -2.0, 0.25, 8.0, 1.0, -0.125];
        let x = [3.0f32, 0.01, 40.0];
        let mut w_max = vec![0.0; 3];
        fold_column_max(&mut w_max, &w0);
        assert_eq!(w_max, vec![8.0, 2.0, 0.25]);
        let s = factors(&[3.0, 0.0, 40.0], &w_max);
        assert_eq!(s[1], 1.0, "a silent feature keeps s = 1");
        assert!((s[0] - (3.0f64.sqrt() / 8.0f64.sqrt())).abs() < 1e-12);
        let mut w = w0.clone();
        let input_scale = migrate(&mut w, &s);
        for (r, row) in w.chunks_exact(3).enumerate() {
            let y: f32 = row
                .iter()
                .zip(&x)
                .zip(&input_scale)
                .map(|((w, x), m)| w * (x * m))
                .sum();
            let want: f32 = w0[r * 3..r * 3 + 3]
                .iter()
                .zip(&x)
                .map(|(w, x)| w * x)
                .sum();
            assert!(
                (y - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{y} vs {want}"
            );
        }
        // Extreme ranges are held to 2^-20 ..= 2^20, so that nothing leaves f32.
        let extreme = factors(&[f32::MAX, 1e-30], &[1e-40, f32::MAX]);
        assert_eq!(extreme, vec![S_LIMIT, 1.0 / S_LIMIT]);
        // Smoothing equalises the ranges: max|x_j / s_j| = max|W_j * s_j| for alpha = 0.5.
        let xs = 40.0 * input_scale[2];
        let ws = w[2].abs().max(w[5].abs());
        assert!((xs - ws).abs() < 1e-5 * xs, "{xs} vs {ws}");
    }
}
