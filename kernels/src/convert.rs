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

/// Widening with F16C (8 at a time) and AVX-512 F (16 at a time); the tail uses the scalar
/// conversion, which is exact and therefore identical.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use half::f16;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,f16c")]
    pub(crate) unsafe fn f16_to_f32_f16c(src: &[f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "f16_to_f32: length mismatch");
        let mut s = src.chunks_exact(8);
        let mut d = dst.chunks_exact_mut(8);
        for (sc, dc) in (&mut s).zip(&mut d) {
            // SAFETY: `sc` holds 8 f16 (16 bytes) and `dc` 8 f32; F16C per the caller.
            unsafe {
                _mm256_storeu_ps(
                    dc.as_mut_ptr(),
                    _mm256_cvtph_ps(_mm_loadu_si128(sc.as_ptr().cast())),
                )
            }
        }
        for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
            *a = b.to_f32();
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn f16_to_f32_avx512(src: &[f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "f16_to_f32: length mismatch");
        let mut s = src.chunks_exact(16);
        let mut d = dst.chunks_exact_mut(16);
        for (sc, dc) in (&mut s).zip(&mut d) {
            // SAFETY: `sc` holds 16 f16 (32 bytes) and `dc` 16 f32; AVX-512 F per the caller.
            unsafe {
                _mm512_storeu_ps(
                    dc.as_mut_ptr(),
                    _mm512_cvtph_ps(_mm256_loadu_si256(sc.as_ptr().cast())),
                )
            }
        }
        for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
            *a = b.to_f32();
        }
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
