//! Element-type conversions.
//!
//! These are the scalar definitions; SIMD versions (F16C, AVX-512, NEON fp16) will be held
//! against them. IEEE binary16 to binary32 is exact, so any correct version must agree bit for
//! bit; binary32 to binary16 rounds to nearest, ties to even, as `half` documents.

use half::f16;

/// Widens `src` into `dst` (exact).
///
/// # Panics
/// If the lengths differ (a caller's bug, not a data error).
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: length mismatch");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Narrows `src` into `dst`, rounding to nearest, ties to even; values beyond the f16 range
/// become infinities (callers that care check for them, as the converter does).
///
/// # Panics
/// If the lengths differ.
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16: length mismatch");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(*s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f16_round_trips_through_f32() {
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let mut wide = vec![0.0f32; all.len()];
        f16_to_f32(&all, &mut wide);
        let mut back = vec![f16::ZERO; all.len()];
        f32_to_f16(&wide, &mut back);
        for (a, b) in all.iter().zip(&back) {
            if a.is_nan() {
                assert!(b.is_nan());
            } else {
                assert_eq!(a.to_bits(), b.to_bits());
            }
        }
    }
}
