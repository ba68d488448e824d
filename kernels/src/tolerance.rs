//! The tolerance policy, in one place, each bound with its reason (STYLE.md, convention 6).
//! Comparisons are NaN-safe: a check fails unless `|got - want| <= tol` holds, so a NaN on
//! either side fails.
//!
//! - Conversions and integer results are exact: f16 widening, int8 quantisation (scale and
//!   every value), and int32 GEMM sums (checked bit-exact where the scales make the result
//!   representable).
//! - Float kernels are compared with the f64 reference twins, and allowed the error their f32
//!   arithmetic explains, scaled by the magnitude involved.

/// `|got - want| <= tol`, false on NaN.
pub fn within(got: f32, want: f32, tol: f32) -> bool {
    (got - want).abs() <= tol
}

/// LayerNorm output: the mean and variance are f32 sums of `n` terms (error up to about
/// `n/lanes + log2(lanes)` roundings relative to the sum of magnitudes); the normalised value
/// `(x - mean) * inv` then carries a relative error of a few times `sqrt(n)` f32 epsilons in
/// practice. Allow `1e-5 * sqrt(n / 64 + 1)` relative to `|gamma| * (|z| + 1) + |beta|`, where
/// `z` is the normalised value (at most sqrt(n) in magnitude).
pub fn layer_norm(n: usize, gamma: f32, beta: f32, z: f32) -> f32 {
    let scale = gamma.abs() * (z.abs() + 1.0) + beta.abs();
    1e-5 * ((n as f32) / 64.0 + 1.0).sqrt() * scale
}

/// Softmax output `p` of an input `d` below the row's maximum (`d = x - max <= 0`): the
/// subtraction rounds in f32, an absolute error of up to `|d| * 2^-24` that `e^d` turns into
/// the same relative error (the f64 reference subtracts exactly); each `e^d` has relative
/// error at most 2.4e-7 (the Cephes polynomial); the sum accumulates in f32 over `n` terms
/// (relative error up to about `n/lanes` epsilons, for lane-wise sums); the division rounds
/// once. Allow `p * (5e-7 + 1.2e-7 * n / 4 + 6e-8 * |d|)` plus 1e-37 absolute for flushed
/// subnormals.
pub fn softmax(n: usize, p: f32, d: f32) -> f32 {
    p * (5e-7 + 1.2e-7 * n as f32 / 4.0 + 6e-8 * d.abs()) + 1e-37
}

/// GELU at `x`: the erf approximation's error with f32 arithmetic (a few ulps of erf's value;
/// the rational `simd::gelu`, scripts/fit-gelu.py), times `0.5 |x|`, plus the rounding of the
/// result. Allow `3e-7 * (|x| + 1)`. The kernels' tests print the worst error seen over
/// [-10, 10]: 9.5e-7 at x = 4.64 (2 ulps there, 0.56 of this bound); 4.8e-7 at x = 2.70 with
/// the exponential-based erf used until 2026-11-27.
pub fn gelu(x: f32) -> f32 {
    3e-7 * (x.abs() + 1.0)
}

/// f32 GEMM element with dot-product depth `k`: each element accumulates its `k` products in
/// f32 with fused multiply-adds, one chain per element (an error of up to `k` roundings in the
/// worst case, about `sqrt(k)` for products of mixed signs), against an f64 reference. Allow
/// `4 * sqrt(k + 1) * 2^-24 * sum_abs`, where `sum_abs` is the sum of the magnitudes of the
/// products, the bias and the residual (so the bound scales with what was added, not with the
/// possibly cancelling result). With the GELU epilogue, add the GELU bound at the
/// pre-activation value (GELU's slope is at most 1.13, covered by the factor 4).
pub fn gemm_f32(k: usize, sum_abs: f32) -> f32 {
    4.0 * ((k + 1) as f32).sqrt() * f32::EPSILON / 2.0 * sum_abs + 1e-30
}

/// int8 GEMM element, against the reference on the same quantised operands (the quantiser is
/// bit-identical on every path, and the i32 sums are exact): what remains is f32 rounding in the
/// store, the sum's conversion to f32 (exact below 2^24), the two scale multiplications, the
/// bias and residual additions, at most 5 roundings of values no larger than `sum_abs` (the
/// magnitudes of the dequantised products, the bias and the residual). Allow
/// `3 * 2^-23 * sum_abs` (6 half-ulps); with the GELU epilogue add the GELU bound.
pub fn gemm_i8(sum_abs: f32) -> f32 {
    3.0 * f32::EPSILON * sum_abs + 1e-30
}

/// int8 GEMM element with activations quantised per group (`groups` groups along K): each
/// group's exact sum is converted exactly and added into an f32 accumulator with two fused
/// multiply-adds (its scale, and its zero-point term times the channels' group sums), so on
/// top of [`gemm_i8`]'s roundings there are two per group, of partial sums no larger than
/// `sum_abs`, which here must bound the magnitudes of both terms (the codes' products and the
/// zero points' products, each times its scale). Allow `(3 + 2 groups) * 2^-23 * sum_abs`.
pub fn gemm_i8_grouped(groups: usize, sum_abs: f32) -> f32 {
    (3.0 + 2.0 * groups as f32) * f32::EPSILON * sum_abs + 1e-30
}

/// Fused attention output `o = sum_j p_j v_j / sum_j p_j` for a query row, against the f64
/// twin. A score `scale * q.k` is an f32 chain of `d` fused multiply-adds (at most `d + 1`
/// roundings relative to `score_abs = scale * max_j sum_c |q_c k_jc|`); a score error `e`
/// changes a weight `p_j` by a factor `e^e` and so the output by at most `2 e v_abs`; the
/// exponential adds 2.4e-7 relative (allow 1e-6, which also covers the rescaling and the final
/// division), and the weighted sum accumulates `n` f32 terms (`n` roundings of values no larger
/// than `v_abs`, the column's largest value magnitude). Allow
/// `v_abs * (2 (d + 1) 2^-24 score_abs + 1e-6 + 2 n 2^-24)`.
pub fn attention(n: usize, d: usize, score_abs: f32, v_abs: f32) -> f32 {
    let eps = f32::EPSILON / 2.0;
    v_abs * (2.0 * (d as f32 + 1.0) * eps * score_abs + 1e-6 + 2.0 * n as f32 * eps) + 1e-30
}

/// The bf16 attention kernel against its twin (`attention_bf16_ref`), which takes the same
/// bf16-rounded Q, K and V: the scores are exact products summed in f32 (as in [`attention`]);
/// each softmax weight is rounded to bfloat16 in both, but the kernel rounds `e^(s - m)` for
/// the running maximum `m` of its key tile (later rescaled in f32) where the twin rounds it for
/// the row's maximum, in f64, so the two roundings may land a bfloat16 step (2^-8 relative)
/// apart on each side: up to 2^-7 relative per weight, and so `2^-7 v_abs` on the output.
/// Allow [`attention`]'s bound plus `2^-7 v_abs` (the worst seen over the attention tests is
/// `1.0e-3 v_abs`).
pub fn attention_bf16(n: usize, d: usize, score_abs: f32, v_abs: f32) -> f32 {
    attention(n, d, score_abs, v_abs) + v_abs / 128.0
}
