//! The vocabulary on AVX-512 F (16 f32 lanes). Every function is `#[inline(always)]` so that it
//! compiles into the caller's `#[target_feature(enable = "avx512f,...")]` body.

use std::arch::x86_64::*;

use super::{DotBf16, DotI8, Simd};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512;

impl Simd for Avx512 {
    const LANES: usize = 16;
    type F = __m512;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: the caller runs on a CPU with AVX-512 F (module docs).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: `p` is valid for 16 reads (trait contract); unaligned load.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: `p` is valid for 16 writes (trait contract); unaligned store.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> __m512 {
        // SAFETY: `p` is valid for 16 halves, 32 bytes (trait contract); vcvtph2ps is AVX-512 F.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load_bf16_pairs(p: *const u32) -> (__m512, __m512) {
        // SAFETY: `p` is valid for 16 u32 (trait contract); AVX-512 F integer and/shift. A
        // bf16 value is the top half of the f32 with the same bits.
        unsafe {
            let x = _mm512_loadu_si512(p.cast());
            let second = _mm512_and_si512(x, _mm512_set1_epi32(0xffff_0000u32 as i32));
            let first = _mm512_slli_epi32::<16>(x);
            (_mm512_castsi512_ps(second), _mm512_castsi512_ps(first))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16_pairs(p: *mut u32, first: __m512, second: __m512) {
        // SAFETY: `p` is valid for 16 u32 writes (trait contract); AVX-512 F integer
        // operations.
        unsafe {
            let v = _mm512_or_si512(bf16_bits(first), _mm512_slli_epi32::<16>(bf16_bits(second)));
            _mm512_storeu_si512(p.cast(), v);
        }
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: __m512) {
        // SAFETY: `p` is valid for 16 u16 writes (trait contract); AVX-512 F (vpmovdw: each
        // lane holds its bits in the low half, so the truncating narrowing is exact).
        unsafe { _mm256_storeu_si256(p.cast(), _mm512_cvtepi32_epi16(bf16_bits(v))) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (module docs).
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn round(a: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m512) -> __m512 {
        // SAFETY: AVX-512 F. `n + 127` is in 1..=254, a valid biased exponent.
        unsafe {
            let e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e))
        }
    }
    /// `vscalefps` scales by `2^n` for any `n`, rounding to denormals and 0 below the normal
    /// range: no clamp to the exponent's range and no select after it. Six instructions fewer
    /// than the portable body, the same bits wherever that body's result is normal. `x` is
    /// clamped at -150 only so that the reduction stays accurate (`e^-150` is below half the
    /// smallest denormal: 0); NaN clamps to -150 too, as the portable body maps it to 0.
    #[inline(always)]
    unsafe fn exp(x: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe {
            let (e, n) = super::exp_reduced::<Avx512>(_mm512_max_ps(x, _mm512_set1_ps(-150.0)));
            _mm512_scalef_ps(e, n)
        }
    }
    #[inline(always)]
    unsafe fn select_ge(a: __m512, b: __m512, x: __m512, y: __m512) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe {
            let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b);
            _mm512_mask_blend_ps(m, y, x)
        }
    }
    #[inline(always)]
    unsafe fn reduce_add(a: __m512) -> f32 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_reduce_add_ps(a) }
    }
    #[inline(always)]
    unsafe fn reduce_max(a: __m512) -> f32 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_reduce_max_ps(a) }
    }
    /// Four stages of 16 shuffles: 32-bit and 64-bit interleaves of row pairs, then two rounds
    /// of 128-bit lane selection (`vshufi32x4`), instead of 256 single moves.
    #[inline(always)]
    unsafe fn transpose_block(src: *const u32, src_stride: usize, dst: *mut u32) {
        // SAFETY: AVX-512 F; `src` holds 16 rows of 16 values `src_stride` apart and `dst` 256
        // values (the trait's contract).
        unsafe {
            // A loop, not `array::from_fn`: the closure was compiled without this function's
            // features and called `_mm512_loadu_si512` out of line, 16 calls per block.
            let mut r = [_mm512_setzero_si512(); 16];
            for (i, ri) in r.iter_mut().enumerate() {
                *ri = _mm512_loadu_si512(src.add(i * src_stride).cast());
            }
            // Row pairs interleaved by 32 bits: t[2p] = (r[2p], r[2p+1]) low, t[2p+1] high.
            let mut t = [_mm512_setzero_si512(); 16];
            for p in 0..8 {
                t[2 * p] = _mm512_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
                t[2 * p + 1] = _mm512_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
            }
            // By 64 bits: in each quad of rows q, u[4q + j] holds column j (mod 4) of rows
            // 4q..4q+4 in each 128-bit lane (lane m: columns 4m + j).
            let mut u = [_mm512_setzero_si512(); 16];
            for q in 0..4 {
                let b = 4 * q;
                u[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
                u[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
                u[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
                u[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
            }
            // Lanes: for column j, rows 0..8 from quads 0, 1 and rows 8..16 from quads 2, 3;
            // 0x88 takes lanes 0 and 2 of each source, 0xdd lanes 1 and 3.
            for j in 0..4 {
                let v0 = _mm512_shuffle_i32x4::<0x88>(u[j], u[4 + j]);
                let v1 = _mm512_shuffle_i32x4::<0xdd>(u[j], u[4 + j]);
                let w0 = _mm512_shuffle_i32x4::<0x88>(u[8 + j], u[12 + j]);
                let w1 = _mm512_shuffle_i32x4::<0xdd>(u[8 + j], u[12 + j]);
                let out = [
                    (j, _mm512_shuffle_i32x4::<0x88>(v0, w0)),
                    (j + 8, _mm512_shuffle_i32x4::<0xdd>(v0, w0)),
                    (j + 4, _mm512_shuffle_i32x4::<0x88>(v1, w1)),
                    (j + 12, _mm512_shuffle_i32x4::<0xdd>(v1, w1)),
                ];
                for (c, x) in out {
                    _mm512_storeu_si512(dst.add(c * 16).cast(), x);
                }
            }
        }
    }
    #[inline(always)]
    unsafe fn store_u8(p: *mut u8, v: __m512) {
        // SAFETY: AVX-512 F (vpmovdb); `p` is valid for 16 writes. The conversion rounds to
        // nearest even by its own rounding field (not MXCSR's); lanes are in 0..=255, so the
        // truncating narrowing is exact.
        unsafe {
            let i =
                _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            _mm_storeu_si128(p.cast(), _mm512_cvtepi32_epi8(i))
        }
    }
}

/// int8 dot products with AVX-512 VNNI `vpdpbusd`: unsigned activations (the codes `q`) times
/// signed weights, four products summed into each i32 lane without saturation (the instruction
/// does not saturate, and the sum of 4 is at most 4 x 32,385).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Vnni;

impl DotI8 for Avx512Vnni {
    type S = Avx512;
    const OFFSET: bool = true;
    type I = __m512i;
    type A = __m512i;
    type W = __m512i;
    const SPLIT_ROWS: usize = 4;
    const SUMS_IN_MEMORY_ROWS: usize = 5;

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        // SAFETY: AVX-512 F (the caller runs on a CPU with AVX-512 F and VNNI).
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn add(a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512 F (as above).
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const u8) -> __m512i {
        // SAFETY: `p` is valid for 4 reads (trait contract).
        unsafe { _mm512_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const i8) -> __m512i {
        // SAFETY: `p` is valid for 64 reads (trait contract).
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512i, a: __m512i, w: __m512i) -> __m512i {
        // SAFETY: AVX-512 VNNI.
        unsafe { _mm512_dpbusd_epi32(acc, a, w) }
    }
    #[inline(always)]
    unsafe fn to_f32(acc: __m512i, col_sum: *const i32, zp: i32) -> __m512 {
        // SAFETY: `col_sum` is valid for 16 reads (trait contract); AVX-512 F. Wrapping i32
        // arithmetic gives the true sum (trait contract).
        unsafe {
            let cs = _mm512_mullo_epi32(_mm512_loadu_si512(col_sum.cast()), _mm512_set1_epi32(zp));
            _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, cs))
        }
    }
    #[inline(always)]
    unsafe fn cvt(acc: __m512i) -> __m512 {
        // SAFETY: AVX-512 F.
        unsafe { _mm512_cvtepi32_ps(acc) }
    }
}

/// `vdpbf16ps` (AVX-512 BF16): two bf16 products per lane added into the f32 accumulator, the
/// second pair's first, each as a fused multiply-add (denormal inputs and results flushed to
/// zero, which the packing makes moot for inputs: [`crate::gemm::to_bf16`] flushes them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Bf16;

impl DotBf16 for Avx512Bf16 {
    type S = Avx512;
    type A = __m512bh;
    type W = __m512bh;

    #[inline(always)]
    unsafe fn bcast(pair: u32) -> __m512bh {
        // SAFETY: AVX-512 F; a 512-bit integer vector and `__m512bh` have the same size and
        // every bit pattern is valid for both.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair as i32)) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const u32) -> __m512bh {
        // SAFETY: `p` is valid for 16 u32 (trait contract); as above for the transmute.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512, a: __m512bh, w: __m512bh) -> __m512 {
        // SAFETY: AVX-512 BF16 (the caller runs on a CPU with it).
        unsafe { _mm512_dpbf16_ps(acc, a, w) }
    }
    /// The pairs' bits as they are (`SPILL` is off: `vdpbf16ps` reads the pairs directly).
    #[inline(always)]
    unsafe fn spill_w(p: *mut f32, w: __m512bh) {
        // SAFETY: `p` is valid for 16 f32 writes (trait contract); `__m512bh` and `__m512`
        // have the same size and every bit pattern is valid for both.
        unsafe { _mm512_storeu_ps(p, std::mem::transmute::<__m512bh, __m512>(w)) }
    }
    #[inline(always)]
    unsafe fn load_spilled(p: *const f32) -> __m512bh {
        // SAFETY: `p` is valid for 16 f32 reads (trait contract); as above.
        unsafe { std::mem::transmute::<__m512, __m512bh>(_mm512_loadu_ps(p)) }
    }
    /// `vcvtneps2bf16`, which rounds as `gemm::to_bf16` does (to nearest even; zeros and
    /// denormals to a signed zero; NaN with the quiet bit set): 1 instruction for 16 values
    /// where the integer rounding takes about 12.
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: __m512) {
        // SAFETY: AVX-512 BF16 (the caller runs on a CPU with it); `p` is valid for 16 u16
        // writes (trait contract); `__m256bh` and `__m256i` have the same size and every bit
        // pattern is valid for both.
        unsafe {
            let b = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(p.cast(), b)
        }
    }
}

/// Each lane of `x` rounded to bfloat16 bits (in the low half of the lane) as `gemm::to_bf16`
/// rounds: add just under half a step plus the kept part's lowest bit and keep the top half;
/// NaN keeps its top half with the quiet bit; a zero exponent (zero, denormal) gives the
/// signed zero.
#[inline(always)]
unsafe fn bf16_bits(x: __m512) -> __m512i {
    // SAFETY: AVX-512 F integer operations (the caller's ISA).
    unsafe {
        let b = _mm512_castps_si512(x);
        let top = _mm512_srli_epi32::<16>(b);
        let odd = _mm512_and_si512(top, _mm512_set1_epi32(1));
        let bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
        let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, bias));
        let mag = _mm512_and_si512(b, _mm512_set1_epi32(0x7fff_ffff));
        let nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7f80_0000));
        let quiet = _mm512_or_si512(top, _mm512_set1_epi32(0x40));
        let r = _mm512_mask_mov_epi32(rounded, nan, quiet);
        let exp = _mm512_and_si512(b, _mm512_set1_epi32(0x7f80_0000));
        let tiny = _mm512_cmpeq_epi32_mask(exp, _mm512_setzero_si512());
        _mm512_mask_mov_epi32(r, tiny, _mm512_and_si512(top, _mm512_set1_epi32(0x8000)))
    }
}
