//! The arithmetic of the reference forward pass: plain Rust, no SIMD, no unsafe.
//!
//! Dot products and reductions accumulate in f64 and round once to f32, so the reference is
//! at least as accurate as the f32 computation it stands for (transformers on CPU) and is a fair
//! oracle for fast paths whose f32 accumulation order differs.

use crate::config::Activation;

/// `sum a_i * b_i` in f64 over four independent lanes (so the compiler can vectorise it).
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [0.0f64; 4];
    let (ca, ra) = a.as_chunks::<4>();
    let (cb, rb) = b.as_chunks::<4>();
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..4 {
            lanes[l] += f64::from(x[l]) * f64::from(y[l]);
        }
    }
    let mut tail = 0.0f64;
    for (x, y) in ra.iter().zip(rb) {
        tail += f64::from(*x) * f64::from(*y);
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// `nn.Linear`: `y = x W^T + b` with `W` `[out, in]` row-major; with input scales (an int8
/// file's smoothing, format 1.2), `y = (x * input_scale) W^T + b`, the product in f32.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_features: usize,
    pub out_features: usize,
    pub input_scale: Option<Vec<f32>>,
}

impl Linear {
    /// `x` is `rows x in_features`; returns `rows x out_features`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.in_features;
        let mut y = Vec::with_capacity(rows * self.out_features);
        let mut scaled = vec![0.0f32; self.in_features];
        for xr in x.chunks_exact(self.in_features) {
            let xr = match &self.input_scale {
                Some(m) => {
                    for ((s, x), f) in scaled.iter_mut().zip(xr).zip(m) {
                        *s = x * f;
                    }
                    &scaled[..]
                }
                None => xr,
            };
            for (w, b) in self.weight.chunks_exact(self.in_features).zip(&self.bias) {
                y.push((dot(xr, w) + f64::from(*b)) as f32);
            }
        }
        y
    }
}

/// `nn.LayerNorm` over the last dimension (biased variance, as PyTorch).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f64,
}

impl LayerNorm {
    /// Normalises every row of `x` in place: the kernels' reference twin (f64 mean and
    /// variance), which is also what every fast LayerNorm is held against. `eps` is applied as
    /// the f32 PyTorch adds.
    pub fn forward(&self, x: &mut [f32]) {
        berth_kernels::elementwise::layer_norm_ref(berth_kernels::elementwise::LayerNormRows {
            x,
            residual: None,
            gamma: &self.weight,
            beta: &self.bias,
            eps: self.eps as f32,
        });
    }
}

/// `ACT2FN[hidden_act]`, applied in place, computed in f64.
pub fn activate(act: Activation, x: &mut [f32]) {
    match act {
        // transformers' GELUActivation, x * 0.5 * (1 + erf(x / sqrt(2))): the kernels'
        // reference twin, with libm's erf.
        Activation::Gelu => berth_kernels::elementwise::gelu_ref(x),
        // NewGELUActivation / PytorchGELUTanh.
        Activation::GeluTanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            for v in x {
                let z = f64::from(*v);
                *v = (0.5 * z * (1.0 + (c * (z + 0.044715 * z * z * z)).tanh())) as f32;
            }
        }
        Activation::Relu => {
            for v in x {
                *v = v.max(0.0);
            }
        }
    }
}

/// Softmax of `scores` in place (max subtracted first, f64 throughout).
pub fn softmax(scores: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_handles_tails() {
        let a: Vec<f32> = (0..7).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), 91.0);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    #[test]
    fn gelu_matches_known_values() {
        // Values of x * Phi(x) computed with mpmath to 1e-12.
        let mut x = [-3.0f32, -1.0, 0.0, 0.5, 2.0];
        activate(Activation::Gelu, &mut x);
        let want = [-0.004049694, -0.15865526, 0.0, 0.34573123, 1.9544997];
        for (g, w) in x.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn layer_norm_normalises() {
        let ln = LayerNorm {
            weight: vec![1.0; 4],
            bias: vec![0.0; 4],
            eps: 0.0,
        };
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        ln.forward(&mut x);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_inputs() {
        let mut s = [1000.0, 1001.0, f64::from(f32::MIN)];
        softmax(&mut s);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(s[2], 0.0);
        assert!(s[1] > s[0]);
    }
}
