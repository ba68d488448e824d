//! int8 quantisation of rows: symmetric for weights (one scale per output channel, chosen at
//! conversion: [`quantize_row_i8`]), asymmetric for activations (one scale and zero point per
//! token, at run time: [`quantize_row_asym`]).
//!
//! Symmetric: for a row `x`, `scale = max |x_i| / 127` and `q_i = round_half_away(x_i / scale)` in
//! `-127 ..= 127`; -128 is never produced, so that negation stays exact and the unsigned-offset
//! trick of VNNI kernels cannot overflow. A row of zeros gets scale 1.0 (and all-zero `q`), so
//! that a scale is always finite and positive. The reconstruction `scale * q_i` differs from
//! `x_i` by at most `scale / 2` (plus one rounding of the division, relative 2^-24).

/// Quantises `src` into `dst` and returns the scale. Inputs must be finite (the converter rejects
/// NaN and infinity before quantising).
///
/// # Panics
/// If the lengths differ.
pub fn quantize_row_i8(src: &[f32], dst: &mut [i8]) -> f32 {
    assert_eq!(src.len(), dst.len(), "quantize_row_i8: length mismatch");
    let max = src.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    for (q, x) in dst.iter_mut().zip(src) {
        // `as` saturates; the clamp documents the range (division may round 127 up a hair).
        *q = (x / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// Reconstructs `scale * q` into `dst`.
///
/// # Panics
/// If the lengths differ.
pub fn dequantize_row_i8(src: &[i8], scale: f32, dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "dequantize_row_i8: length mismatch");
    for (d, q) in dst.iter_mut().zip(src) {
        *d = scale * f32::from(*q);
    }
}

/// Asymmetric uint8 quantisation of a row, the scheme of int8 GEMM activations (one scale and
/// one zero point per token, or per group of K): with `hi = max(0, max x)`,
/// `lo = min(0, min x)` and `range = hi - lo`, `scale = range / 255` and `inv = 255 / range`;
/// `zero = round_even(-lo * inv)` (at most 255) and `q_i = clamp(round_even(x_i * inv + zero),
/// 0, 255)`, where `round_even` rounds to nearest, ties to even, and each product and sum is
/// rounded once (no fused multiply-add), so that `x_i ~ scale * (q_i - zero)`. A row of zeros,
/// or one whose range is so small (below about 7.5e-37) that `inv` overflows, gets scale 1.0 and
/// zero point 0 (all its codes then round to 0).
///
/// Against the symmetric scheme this spends all 256 codes on the row's actual range: a row
/// that is all of one sign (GELU outputs, nearly) gets twice the resolution. The reconstruction
/// is within `scale / 2` of `x_i` (plus float rounding), except where the clamp bites at the
/// row's extremes (rounding `zero` and `x * inv` up together can reach 256), where it is
/// within `scale`. Multiplying by `inv` and rounding to even are what the vector units do in
/// one instruction each (a division and rounding half away from zero took 14 vector
/// instructions per vector where this takes 6).
///
/// `dst` receives the codes `q_i` (`0..=255`); the int8 GEMM packs them as they are where the
/// instruction multiplies unsigned bytes, and as `q_i - 128` (the byte XOR 0x80) where it
/// multiplies signed ones. Returns `(scale, zero)`. Inputs must be finite.
///
/// # Panics
/// If the lengths differ.
pub fn quantize_row_asym(src: &[f32], dst: &mut [u8]) -> (f32, i32) {
    assert_eq!(src.len(), dst.len(), "quantize_row_asym: length mismatch");
    let (hi, neg_lo) = src
        .iter()
        .fold((0.0f32, 0.0f32), |(h, l), &x| (h.max(x), l.max(-x)));
    let p = AsymParams::new(hi, neg_lo);
    for (q, &x) in dst.iter_mut().zip(src) {
        // Clamped before rounding, as the vector body does (the same result for finite values).
        *q = (x * p.inv + p.zero).clamp(0.0, 255.0).round_ties_even() as u8;
    }
    (p.scale, p.zero as i32)
}

/// The parameters of [`quantize_row_asym`] from the row's `max(0, max x)` and
/// `max(0, max -x)`; shared by the scalar and SIMD bodies so that they agree bit for bit.
struct AsymParams {
    scale: f32,
    inv: f32,
    /// The zero point, integral.
    zero: f32,
}

impl AsymParams {
    #[inline(always)]
    fn new(hi: f32, neg_lo: f32) -> AsymParams {
        let range = hi + neg_lo;
        let inv = 255.0 / range;
        if range > 0.0 && inv.is_finite() {
            AsymParams {
                scale: range / 255.0,
                inv,
                zero: (neg_lo * inv).round_ties_even().min(255.0),
            }
        } else {
            AsymParams {
                scale: 1.0,
                inv: 1.0,
                zero: 0.0,
            }
        }
    }
}

/// [`quantize_row_asym`], generic SIMD body, bit-identical to it: the extremes are exact, the
/// parameters come from the same scalar code, the product and the sum are each rounded once
/// in both, and [`Simd::store_u8`] rounds to nearest even as `round_ties_even` does.
///
/// [`Simd::store_u8`]: crate::simd::Simd::store_u8
#[inline(always)]
pub(crate) unsafe fn quantize_row_asym_simd<S: crate::simd::Simd>(
    src: &[f32],
    dst: &mut [u8],
) -> (f32, i32) {
    use crate::simd::{self, MAX_LANES};
    assert_eq!(src.len(), dst.len(), "quantize_row_asym: length mismatch");
    let l = S::LANES;
    // SAFETY: chunks of exactly LANES elements or the padded partial helpers and
    // a MAX_LANES stack buffer; the caller runs on S's ISA.
    unsafe {
        let zero = S::splat(0.0);
        let (mut hi, mut neg_lo) = (zero, zero);
        let mut xs = src.chunks_exact(l);
        for c in &mut xs {
            let v = S::load(c.as_ptr());
            hi = S::max(hi, v);
            neg_lo = S::max(neg_lo, S::sub(zero, v));
        }
        if !xs.remainder().is_empty() {
            // Padded with zeros, which the extremes start from anyway.
            let v = simd::load_partial::<S>(xs.remainder(), 0.0);
            hi = S::max(hi, v);
            neg_lo = S::max(neg_lo, S::sub(zero, v));
        }
        let p = AsymParams::new(S::reduce_max(hi), S::reduce_max(neg_lo));
        let (iv, zv) = (S::splat(p.inv), S::splat(p.zero));
        let mut xs = src.chunks_exact(l);
        let mut ds = dst.chunks_exact_mut(l);
        for (c, d) in (&mut xs).zip(&mut ds) {
            S::store_u8(d.as_mut_ptr(), quant_asym::<S>(S::load(c.as_ptr()), iv, zv));
        }
        let dt = ds.into_remainder();
        if !dt.is_empty() {
            let mut buf = [0u8; MAX_LANES];
            S::store_u8(
                buf.as_mut_ptr(),
                quant_asym::<S>(simd::load_partial::<S>(xs.remainder(), 0.0), iv, zv),
            );
            let n = dt.len();
            dt.copy_from_slice(&buf[..n]);
        }
        (p.scale, p.zero as i32)
    }
}

/// `out[i] = x[i] * m[i]`, each product rounded once, as the scalar product is (what the int8
/// GEMM does to a row of A with the weights' input scales before quantising it).
///
/// # Panics
/// If the lengths differ.
#[inline(always)]
pub(crate) unsafe fn mul_into<S: crate::simd::Simd>(x: &[f32], m: &[f32], out: &mut [f32]) {
    assert!(
        x.len() == m.len() && m.len() == out.len(),
        "mul_into: length mismatch"
    );
    let l = S::LANES;
    let body = x.len() / l * l;
    for i in (0..body).step_by(l) {
        // SAFETY: `i + LANES <= body <= len` for all three slices; the caller runs on S's ISA.
        unsafe {
            let v = S::mul(S::load(x.as_ptr().add(i)), S::load(m.as_ptr().add(i)));
            S::store(out.as_mut_ptr().add(i), v);
        }
    }
    for i in body..x.len() {
        out[i] = x[i] * m[i];
    }
}

/// `clamp(v * iv + zv, 0, 255)` lane-wise, clamped before rounding as in the scalar body;
/// the caller's [`crate::simd::Simd::store_u8`] rounds. A function, not a closure, so that it
/// inlines into the caller's `#[target_feature]` body (see `simd::Map`).
#[inline(always)]
unsafe fn quant_asym<S: crate::simd::Simd>(v: S::F, iv: S::F, zv: S::F) -> S::F {
    // SAFETY: lane arithmetic; the caller runs on S's ISA.
    unsafe {
        let t = S::add(S::mul(v, iv), zv);
        S::min(S::max(t, S::splat(0.0)), S::splat(255.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reconstruction_is_within_half_a_step(row in prop::collection::vec(-1e3f32..1e3, 0..300)) {
            let mut q = vec![0i8; row.len()];
            let scale = quantize_row_i8(&row, &mut q);
            prop_assert!(scale.is_finite() && scale > 0.0);
            let mut back = vec![0.0f32; row.len()];
            dequantize_row_i8(&q, scale, &mut back);
            for ((x, y), qi) in row.iter().zip(&back).zip(&q) {
                prop_assert!(*qi >= -127);
                // Half a step, plus float rounding of the division and the product.
                let tol = scale * 0.5 * (1.0 + 1e-5) + x.abs() * 1e-6;
                prop_assert!((x - y).abs() <= tol, "x={x} y={y} scale={scale}");
            }
        }
    }

    proptest! {
        #[test]
        fn asymmetric_reconstruction_is_within_a_step(
            row in prop::collection::vec(-1e3f32..1e3, 0..300),
            shift in -1e3f32..1e3,
        ) {
            // Rows of one sign (shifted) and of both.
            for row in [row.clone(), row.iter().map(|x| x.abs() + shift.abs()).collect()] {
                let mut q = vec![0u8; row.len()];
                let (scale, zero) = quantize_row_asym(&row, &mut q);
                prop_assert!(scale.is_finite() && scale > 0.0);
                prop_assert!((0..=255).contains(&zero));
                let lo = row.iter().fold(0.0f32, |a, &x| a.min(x));
                let hi = row.iter().fold(0.0f32, |a, &x| a.max(x));
                for (x, qi) in row.iter().zip(&q) {
                    let y = scale * ((i32::from(*qi) - zero) as f32);
                    // Half a step inside the range; a whole step where the clamp bites at the
                    // extremes; plus float rounding.
                    let at_edge = *x == lo || *x == hi;
                    let steps = if at_edge { 1.0 } else { 0.5 };
                    let tol = scale * steps * (1.0 + 1e-5) + x.abs() * 1e-6;
                    prop_assert!((x - y).abs() <= tol, "x={x} y={y} scale={scale} zero={zero}");
                }
            }
        }
    }

    #[test]
    fn asymmetric_uses_every_code_on_one_signed_rows() {
        let mut q = [0u8; 4];
        let (scale, zero) = quantize_row_asym(&[0.0, 1.0, 2.55, 0.5], &mut q);
        assert_eq!((scale, zero), (2.55 / 255.0, 0));
        assert_eq!(q, [0, 100, 255, 50]);
        let (scale, zero) = quantize_row_asym(&[-2.55, -1.0, 0.0, -0.5], &mut q);
        assert_eq!((scale, zero), (2.55 / 255.0, 255));
        assert_eq!(q, [0, 155, 255, 205]);
        assert_eq!(quantize_row_asym(&[0.0; 4], &mut q), (1.0, 0));
        assert_eq!(q, [0; 4]);
    }

    #[test]
    fn extremes_map_to_plus_minus_127() {
        let row = [-2.0f32, 0.5, 2.0, 0.0];
        let mut q = [0i8; 4];
        let scale = quantize_row_i8(&row, &mut q);
        assert_eq!(q, [-127, 32, 127, 0]);
        assert_eq!(scale, 2.0 / 127.0);
    }

    #[test]
    fn zero_row_gets_unit_scale() {
        let mut q = [5i8; 3];
        assert_eq!(quantize_row_i8(&[0.0; 3], &mut q), 1.0);
        assert_eq!(q, [0; 3]);
    }
}
