//! The vocabulary on AVX2 with FMA (8 f32 lanes). Every function is `#[inline(always)]` so that
//! it compiles into the caller's `#[target_feature(enable = "avx2,fma,...")]` body.

use std::arch::x86_64::*;

use super::{DotI8, Simd};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2;

impl Simd for Avx2 {
    const LANES: usize = 8;
    type F = __m256;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: the caller runs on a CPU with AVX2 and FMA (module docs).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: `p` is valid for 8 reads (trait contract); unaligned load.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: `p` is valid for 8 writes (trait contract); unaligned store.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> __m256 {
        // SAFETY: `p` is valid for 8 halves, 16 bytes (trait contract); vcvtph2ps is F16C,
        // which every AVX2 path requires.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load_bf16_pairs(p: *const u32) -> (__m256, __m256) {
        // SAFETY: `p` is valid for 8 u32 (trait contract); AVX2 integer and/shift. A bf16
        // value is the top half of the f32 with the same bits.
        unsafe {
            let x = _mm256_loadu_si256(p.cast());
            let second = _mm256_and_si256(x, _mm256_set1_epi32(0xffff_0000u32 as i32));
            let first = _mm256_slli_epi32::<16>(x);
            (_mm256_castsi256_ps(second), _mm256_castsi256_ps(first))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16_pairs(p: *mut u32, first: __m256, second: __m256) {
        // SAFETY: `p` is valid for 8 u32 writes (trait contract); AVX2 integer operations.
        unsafe {
            let v = _mm256_or_si256(bf16_bits(first), _mm256_slli_epi32::<16>(bf16_bits(second)));
            _mm256_storeu_si256(p.cast(), v);
        }
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: __m256) {
        // SAFETY: `p` is valid for 8 u16 writes (trait contract); AVX2. Each lane holds its
        // bits in the low half (0..=0xffff), so the saturating pack of the two 128-bit halves
        // is exact and keeps the order.
        unsafe {
            let b = bf16_bits(v);
            let w = _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
            _mm_storeu_si128(p.cast(), w)
        }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn round(a: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m256) -> __m256 {
        // SAFETY: AVX2. `n + 127` is in 1..=254, a valid biased exponent.
        unsafe {
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    unsafe fn select_ge(a: __m256, b: __m256, x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_GE_OQ>(a, b)) }
    }
    #[inline(always)]
    unsafe fn reduce_add(a: __m256) -> f32 {
        // SAFETY: AVX/SSE3. Pairwise: (lo + hi) halves, then within 128 bits.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    unsafe fn reduce_max(a: __m256) -> f32 {
        // SAFETY: AVX/SSE3.
        unsafe {
            let s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_max_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    unsafe fn store_u8(p: *mut u8, v: __m256) {
        // SAFETY: AVX2; `p` is valid for 8 writes. `cvtps` rounds by MXCSR, which Rust leaves
        // at its default, to nearest even. Lanes are in 0..=255, so the saturating packs are
        // exact: the two 128-bit halves (dwords 0..3 and 4..7) become words, then bytes 0..7.
        unsafe {
            let i = _mm256_cvtps_epi32(v);
            let w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256::<1>(i));
            _mm_storel_epi64(p.cast(), _mm_packus_epi16(w, w))
        }
    }
}

/// int8 dot products with AVX-VNNI (the VEX form of `vpdpbusd` on 256-bit registers): the same
/// unsigned-offset arithmetic as AVX-512 VNNI, without saturation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AvxVnni;

impl DotI8 for AvxVnni {
    type S = Avx2;
    const OFFSET: bool = true;
    const SUMS_IN_MEMORY_ROWS: usize = 4;
    type I = __m256i;
    type A = __m256i;
    type W = __m256i;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: AVX (the caller runs on a CPU with AVX2 and AVX-VNNI).
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 (as above).
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const u8) -> __m256i {
        // SAFETY: `p` is valid for 4 reads (trait contract).
        unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const i8) -> __m256i {
        // SAFETY: `p` is valid for 32 reads (trait contract).
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, a: __m256i, w: __m256i) -> __m256i {
        // SAFETY: AVX-VNNI.
        unsafe { _mm256_dpbusd_avx_epi32(acc, a, w) }
    }
    #[inline(always)]
    unsafe fn to_f32(acc: __m256i, col_sum: *const i32, zp: i32) -> __m256 {
        // SAFETY: `col_sum` is valid for 8 reads (trait contract); AVX2. Wrapping i32
        // arithmetic gives the true sum (trait contract).
        unsafe {
            let cs = _mm256_mullo_epi32(_mm256_loadu_si256(col_sum.cast()), _mm256_set1_epi32(zp));
            _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, cs))
        }
    }
    #[inline(always)]
    unsafe fn cvt(acc: __m256i) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_cvtepi32_ps(acc) }
    }
}

/// int8 dot products on AVX2 without VNNI: `vpmaddubsw` multiplies unsigned by signed bytes
/// and adds adjacent pairs into i16 with saturation, then `vpmaddwd` by ones adds the pairs
/// into i32. To keep the i16 sums exact, activations stay signed (`q - 128`, no offset): the
/// unsigned operand is `|a|` (at most 128: `vpabsb` of -128 is the unsigned byte 128) and the
/// signed one is `w` with `a`'s sign applied (`vpsignb`; `w` is in `-127..=127`, so its
/// negation is exact), so each product is `a * w` and a pair sums to at most
/// 2 x 128 x 127 = 32,512 < 32,767 in magnitude.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2Madd;

impl DotI8 for Avx2Madd {
    type S = Avx2;
    const OFFSET: bool = false;
    type I = __m256i;
    /// The activations and their magnitudes.
    type A = (__m256i, __m256i);
    type W = __m256i;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: AVX (the caller runs on a CPU with AVX2).
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 (as above).
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const u8) -> (__m256i, __m256i) {
        // SAFETY: `p` is valid for 4 reads (trait contract); AVX2.
        unsafe {
            let a = _mm256_set1_epi32(p.cast::<i32>().read_unaligned());
            (a, _mm256_abs_epi8(a))
        }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const i8) -> __m256i {
        // SAFETY: `p` is valid for 32 reads (trait contract).
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, a: (__m256i, __m256i), w: __m256i) -> __m256i {
        // SAFETY: AVX2. See the type's docs for why the i16 pair sums do not saturate.
        unsafe {
            let pairs = _mm256_maddubs_epi16(a.1, _mm256_sign_epi8(w, a.0));
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }
    #[inline(always)]
    unsafe fn to_f32(acc: __m256i, col_sum: *const i32, zp: i32) -> __m256 {
        // SAFETY: as `AvxVnni::to_f32` (AVX2; `col_sum` valid for 8 reads).
        unsafe { AvxVnni::to_f32(acc, col_sum, zp) }
    }
    #[inline(always)]
    unsafe fn cvt(acc: __m256i) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_cvtepi32_ps(acc) }
    }
}

/// Each lane of `x` rounded to bfloat16 bits (in the low half of the lane) as `gemm::to_bf16`
/// rounds (see the AVX-512 twin).
#[inline(always)]
unsafe fn bf16_bits(x: __m256) -> __m256i {
    // SAFETY: AVX2 integer operations (the caller's ISA).
    unsafe {
        let b = _mm256_castps_si256(x);
        let top = _mm256_srli_epi32::<16>(b);
        let odd = _mm256_and_si256(top, _mm256_set1_epi32(1));
        let bias = _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(b, bias));
        let mag = _mm256_and_si256(b, _mm256_set1_epi32(0x7fff_ffff));
        let nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7f80_0000));
        let quiet = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
        let r = _mm256_blendv_epi8(rounded, quiet, nan);
        let exp = _mm256_and_si256(b, _mm256_set1_epi32(0x7f80_0000));
        let tiny = _mm256_cmpeq_epi32(exp, _mm256_setzero_si256());
        _mm256_blendv_epi8(r, _mm256_and_si256(top, _mm256_set1_epi32(0x8000)), tiny)
    }
}
