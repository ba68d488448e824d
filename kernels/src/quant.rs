//! Symmetric int8 quantisation of rows: the scheme berth uses for weights (one scale per output
//! channel, chosen at conversion) and, later, for activations (one scale per token).
//!
//! For a row `x`, `scale = max |x_i| / 127` and `q_i = round_half_away(x_i / scale)` in
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

/// The same quantisation, generic SIMD body. Bit-identical to [`quantize_row_i8`]: the maximum
/// is exact, the division is IEEE, and rounding half away from zero is computed exactly as
/// `trunc(q) + (|q - trunc(q)| >= 0.5 ? sign(q) : 0)`.
#[inline(always)]
pub(crate) unsafe fn quantize_row<S: crate::simd::Simd>(src: &[f32], dst: &mut [i8]) -> f32 {
    use crate::simd::{self, MAX_LANES};
    assert_eq!(src.len(), dst.len(), "quantize_row_i8: length mismatch");
    let l = S::LANES;
    // SAFETY: chunks of exactly LANES elements or the padded partial helpers and
    // a MAX_LANES stack buffer; the caller runs on S's ISA.
    unsafe {
        let mut m = S::splat(0.0);
        let mut xs = src.chunks_exact(l);
        for c in &mut xs {
            m = S::max(m, S::abs(S::load(c.as_ptr())));
        }
        if !xs.remainder().is_empty() {
            m = S::max(m, S::abs(simd::load_partial::<S>(xs.remainder(), 0.0)));
        }
        let max = S::reduce_max(m);
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let sv = S::splat(scale);
        let mut xs = src.chunks_exact(l);
        let mut ds = dst.chunks_exact_mut(l);
        for (c, d) in (&mut xs).zip(&mut ds) {
            S::store_i8(d.as_mut_ptr(), quant::<S>(S::load(c.as_ptr()), sv));
        }
        let dt = ds.into_remainder();
        if !dt.is_empty() {
            let mut buf = [0i8; MAX_LANES];
            S::store_i8(
                buf.as_mut_ptr(),
                quant::<S>(simd::load_partial::<S>(xs.remainder(), 0.0), sv),
            );
            let n = dt.len();
            dt.copy_from_slice(&buf[..n]);
        }
        scale
    }
}

/// `round_half_away(v / sv)` clamped to `-127..=127`, lane-wise. A function, not a closure, so
/// that it inlines into the caller's `#[target_feature]` body (see `simd::Map`).
#[inline(always)]
unsafe fn quant<S: crate::simd::Simd>(v: S::F, sv: S::F) -> S::F {
    // SAFETY: lane arithmetic; the caller runs on S's ISA.
    unsafe {
        let q = S::div(v, sv);
        let t = S::trunc(q);
        let half_or_more = S::select_ge(
            S::abs(S::sub(q, t)),
            S::splat(0.5),
            S::splat(1.0),
            S::splat(0.0),
        );
        let r = S::add(t, S::copysign(half_or_more, q));
        S::min(S::max(r, S::splat(-127.0)), S::splat(127.0))
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
