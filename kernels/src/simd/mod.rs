//! A small vocabulary of f32 vector operations, implemented once per instruction set
//! (`avx512.rs`, `avx2.rs`, `neon.rs`). Kernels whose algorithm is the same on every ISA are
//! written once over this trait and instantiated inside a `#[target_feature]` function per ISA
//! (STYLE.md, convention 3); only operations whose instructions really differ get their own
//! code.
//!
//! Every method is `unsafe` for one reason: it executes instructions of its ISA, so it may only
//! run on a CPU that has them. The dispatch table installs an ISA's kernels only after run-time
//! detection confirmed the features (`crate::dispatch`). Pointer arguments must be valid for
//! `LANES` elements.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

/// The most lanes any implementation has (AVX-512: 16 f32). Tails are processed through a
/// stack buffer of this size.
pub(crate) const MAX_LANES: usize = 16;

pub(crate) trait Simd: Sized {
    const LANES: usize;
    type F: Copy;

    unsafe fn splat(x: f32) -> Self::F;
    unsafe fn load(p: *const f32) -> Self::F;
    unsafe fn store(p: *mut f32, v: Self::F);
    /// Loads `LANES` IEEE half-precision values (as bits) widened exactly to f32.
    unsafe fn load_f16(p: *const u16) -> Self::F;
    /// Loads `LANES` pairs of bfloat16 values (`LANES` u32, the first of each pair in the low
    /// half) widened exactly to f32: (the second values, the first values).
    unsafe fn load_bf16_pairs(p: *const u32) -> (Self::F, Self::F);
    /// Rounds `first` and `second` to bfloat16 as `gemm::to_bf16` does (to nearest, ties to
    /// even; zeros and denormals to a signed zero; NaN quiet) and stores them as `LANES` pairs,
    /// `first` in the low half: the inverse of [`Simd::load_bf16_pairs`].
    unsafe fn store_bf16_pairs(p: *mut u32, first: Self::F, second: Self::F);
    /// Rounds `LANES` values to bfloat16 as [`Simd::store_bf16_pairs`] does and stores their
    /// bits in order (`LANES` u16): consecutive values of a row become the GEMM's pairs,
    /// the first of each in the low half.
    unsafe fn store_bf16(p: *mut u16, v: Self::F);
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn sub(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn mul(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn div(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn max(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn min(a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c` with one rounding.
    unsafe fn fma(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// Round to nearest, ties to even.
    unsafe fn round(a: Self::F) -> Self::F;
    /// `2^n` for integral `n` in `-126..=127`, built from the exponent bits.
    unsafe fn pow2i(n: Self::F) -> Self::F;
    /// Per lane: `a >= b ? x : y`.
    unsafe fn select_ge(a: Self::F, b: Self::F, x: Self::F, y: Self::F) -> Self::F;
    unsafe fn reduce_add(a: Self::F) -> f32;
    unsafe fn reduce_max(a: Self::F) -> f32;
    /// Rounds lanes holding values in `0.0..=255.0` to nearest, ties to even, and stores them
    /// as bytes (`LANES` of them).
    unsafe fn store_u8(p: *mut u8, v: Self::F);
    /// Transposes the `LANES x LANES` block of 32-bit values at `src` (rows `src_stride`
    /// apart) into `dst` (rows `LANES` apart): `dst[c * LANES + r] = src[r * src_stride + c]`.
    /// Pure data movement (the bits are kept). `src` must be valid for `LANES` rows of `LANES`
    /// values, `dst` for `LANES * LANES` writes. The default moves one value at a time.
    #[inline(always)]
    unsafe fn transpose_block(src: *const u32, src_stride: usize, dst: *mut u32) {
        let l = Self::LANES;
        for r in 0..l {
            for c in 0..l {
                // SAFETY: the contract above.
                unsafe { *dst.add(c * l + r) = *src.add(r * src_stride + c) };
            }
        }
    }
    /// `e^x` ([`exp`], which calls this): the portable body unless an ISA has a shorter one with
    /// the same results.
    #[inline(always)]
    unsafe fn exp(x: Self::F) -> Self::F {
        // SAFETY: the caller runs on this ISA.
        unsafe { exp_portable::<Self>(x) }
    }
}

/// The int8 dot products of an int8 GEMM microkernel, one implementation per instruction
/// (`vpdpbusd` on AVX-512 VNNI and AVX-VNNI, `vpmaddubsw` + `vpmaddwd` on plain AVX2, `sdot` and
/// `smull` + pairwise adds on NEON). An accumulator holds `S::LANES` i32 lanes, one per output
/// channel; one `dot` adds, to each lane, the 4-deep dot product of a broadcast group of 4
/// activations with that channel's 4 weights (the weights of `LANES` channels are `4 * LANES`
/// consecutive bytes, channel-major within the group: docs/KERNELS.md, "Packed weight layout, int8").
///
/// Sums are exact: activations are stored as `q - 128` in `-128..=127` (`q` the asymmetric
/// code, `0..=255`) and weights are in `-127..=127` (the weight quantiser never makes -128), so
/// a product is at most 255 x 127 = 32,385 in magnitude with the +128 offset (128 x 127
/// without), and the i32 lanes hold any K up to 66,000; every implementation states why its
/// intermediates cannot saturate.
pub(crate) trait DotI8 {
    /// The f32 vocabulary of the same ISA and lane count, for the epilogue.
    type S: Simd;
    /// Whether the activation bytes are multiplied as unsigned (`q`, the stored `q - 128` with
    /// its top bit flipped: `vpdpbusd` multiplies unsigned by signed bytes) rather than signed
    /// (`q - 128`). The row's zero-point correction differs by 128 accordingly.
    const OFFSET: bool;
    /// i32 accumulators.
    type I: Copy;
    /// A broadcast group of 4 activations (with whatever the instruction needs precomputed).
    type A: Copy;
    /// The weights of `LANES` channels for one group of 4.
    type W: Copy;

    /// The most rows for which the grouped microkernel sums alternate steps of K into two sets
    /// of accumulators, added at each group's end: where its rows x NV accumulators are too few
    /// chains for the instruction's latency times its throughput (AVX-512 VNNI's 4-row tile: 8
    /// chains against 5 cycles x 2 a cycle). The i32 sums are exact either way, so the results
    /// are the same bits. 0: never.
    const SPLIT_ROWS: usize = 0;
    /// The fewest rows for which the grouped microkernel keeps its f32 sums in memory (L1),
    /// read and written once per group, so that the registers hold more i32 accumulators,
    /// enough chains for the instruction's latency: where the ISA has too few registers for
    /// both sets at that height (AVX-VNNI's 16 at 6 rows, AVX-512's 32 at 8).
    const SUMS_IN_MEMORY_ROWS: usize = usize::MAX;

    unsafe fn zero() -> Self::I;
    /// Lane-wise sum of two accumulators (wrapping; the sums added are exact).
    unsafe fn add(a: Self::I, b: Self::I) -> Self::I;
    /// Broadcasts the 4 bytes at `p` (as stored by the packing: offset when `OFFSET`).
    unsafe fn bcast(p: *const u8) -> Self::A;
    /// Loads `4 * LANES` weight bytes.
    unsafe fn load_w(p: *const i8) -> Self::W;
    unsafe fn dot(acc: Self::I, a: Self::A, w: Self::W) -> Self::I;
    /// The exact sum as f32: `acc - zp * col_sum` (`col_sum` valid for `LANES` values; `zp` the
    /// row's zero point, less 128 unless `OFFSET`), in wrapping i32 arithmetic, whose result is
    /// the true one because the true sum `sum (q - zero) w` is within 255 x 127 x K < 2^31;
    /// converted exactly below 2^24, else rounded once.
    unsafe fn to_f32(acc: Self::I, col_sum: *const i32, zp: i32) -> <Self::S as Simd>::F;
    /// The sum as f32, without correction: exact while `|acc| < 2^24` (a group of activations
    /// of at most [`crate::gemm::MAX_ACT_GROUP`] elements keeps it there).
    unsafe fn cvt(acc: Self::I) -> <Self::S as Simd>::F;
}

/// The bfloat16 dot products of a bf16 GEMM microkernel: to each f32 lane (one output channel),
/// add the 2-deep dot product of a broadcast pair of bf16 activations with that channel's pair
/// of bf16 weights (the pairs of `LANES` channels are `LANES` consecutive u32, the first of each
/// pair, even k, in the low half: docs/KERNELS.md, "Packed weight layout, bf16"). Every
/// implementation computes exactly what `vdpbf16ps` does for normal numbers: the second
/// products' fused multiply-add into the accumulator, then the first's (a product of two bf16
/// values is exact in f32), so every path gives the same bits.
pub(crate) trait DotBf16 {
    /// The f32 vocabulary of the same ISA and lane count (accumulators and the epilogue).
    type S: Simd;
    /// A broadcast pair of activations.
    type A: Copy;
    /// The weight pairs of `LANES` channels.
    type W: Copy;

    /// u32 words per pair of activations in a GEMM's packed A: 1, the pair itself, or 2, each
    /// value already widened to f32 (the first, then the second), so that
    /// [`DotBf16::bcast_a`] is two broadcast loads and no shuffles.
    const A_WORDS: usize = 1;

    /// Broadcasts a pair (the first value in the low half).
    unsafe fn bcast(pair: u32) -> Self::A;
    /// Broadcasts the pair packed at `p` (`A_WORDS` words: [`DotBf16::bcast`] of the pair, or
    /// the two widened values). Safety: `p` is valid for `A_WORDS` reads; the caller runs on
    /// the ISA.
    #[inline(always)]
    unsafe fn bcast_a(p: *const u32) -> Self::A {
        // SAFETY: `p` is valid for one read (A_WORDS = 1); the caller runs on the ISA.
        unsafe { Self::bcast(*p) }
    }
    /// Broadcasts the pair of `first` and `second`, two bf16 values held as f32 (their low 16
    /// bits zero): [`DotBf16::bcast`] of their pair, or where A's pairs are widened
    /// (`A_WORDS` 2) each value as it is, which from memory is a broadcast load and no
    /// shuffle.
    #[inline(always)]
    unsafe fn bcast_values(first: f32, second: f32) -> Self::A {
        // SAFETY: the caller runs on the ISA.
        unsafe { Self::bcast((first.to_bits() >> 16) | (second.to_bits() & 0xffff_0000)) }
    }
    /// Loads `LANES` u32 weight pairs.
    unsafe fn load_w(p: *const u32) -> Self::W;
    /// Whether a bf16 GEMM block's first micro-panel keeps the weights it loads, as
    /// [`DotBf16::spill_w`] stores them, for the block's other micro-panels to read back with
    /// [`DotBf16::load_spilled`]: worth it where [`DotBf16::load_w`] costs arithmetic that the
    /// multiply-adds' ports would otherwise do, once per micro-panel.
    const SPILL: bool = false;
    /// f32 words per weight pair as [`DotBf16::spill_w`] stores it: 1 (the pair's bits) or 2
    /// (its two values).
    const W_WORDS: usize = 1;
    /// Stores `w` as `LANES * W_WORDS` f32 words at `p`. Safety: `p` is valid for that many
    /// writes; the caller runs on the ISA.
    unsafe fn spill_w(p: *mut f32, w: Self::W);
    /// Loads what [`DotBf16::spill_w`] stored at `p`. Safety: `p` is valid for
    /// `LANES * W_WORDS` reads; the caller runs on the ISA.
    unsafe fn load_spilled(p: *const f32) -> Self::W;
    unsafe fn dot(acc: <Self::S as Simd>::F, a: Self::A, w: Self::W) -> <Self::S as Simd>::F;
    /// [`Simd::store_bf16`] (the default), where the ISA has a conversion of its own.
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: <Self::S as Simd>::F) {
        // SAFETY: the trait contract of `Simd::store_bf16`; the caller runs on S's ISA.
        unsafe { Self::S::store_bf16(p, v) }
    }
}

/// bf16 dot products on any f32 vocabulary: the pairs widened to f32 (a shift or a mask of the
/// bits), then two fused multiply-adds in `vdpbf16ps`'s order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Widen<S>(std::marker::PhantomData<S>);

impl<S: Simd> DotBf16 for Widen<S> {
    type S = S;
    /// (second, first), each broadcast.
    type A = (S::F, S::F);
    /// (second, first) of each channel.
    type W = (S::F, S::F);

    #[inline(always)]
    unsafe fn bcast(pair: u32) -> (S::F, S::F) {
        // SAFETY: the caller runs on S's ISA.
        unsafe {
            (
                S::splat(f32::from_bits(pair & 0xffff_0000)),
                S::splat(f32::from_bits(pair << 16)),
            )
        }
    }
    /// Packed A holds each value as f32: a broadcast from memory is a load-port operation,
    /// where splatting the halves of a pair takes two shuffles per row and pair of k, as many
    /// as the two FMAs' port share (on Intel's AVX-512, where FMAs and shuffles share ports 0
    /// and 5, this took the GEMM from about 100 to about 150 GFLOP/s per core).
    const A_WORDS: usize = 2;

    #[inline(always)]
    unsafe fn bcast_a(p: *const u32) -> (S::F, S::F) {
        // SAFETY: `p` is valid for two reads, the first value's f32 bits then the second's
        // (trait contract); the caller runs on S's ISA.
        unsafe {
            (
                S::splat(f32::from_bits(*p.add(1))),
                S::splat(f32::from_bits(*p)),
            )
        }
    }
    #[inline(always)]
    unsafe fn bcast_values(first: f32, second: f32) -> (S::F, S::F) {
        // SAFETY: the caller runs on S's ISA.
        unsafe { (S::splat(second), S::splat(first)) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const u32) -> (S::F, S::F) {
        // SAFETY: `p` is valid for LANES reads (trait contract); the caller runs on S's ISA.
        unsafe { S::load_bf16_pairs(p) }
    }
    /// Widening a vector of pairs takes two integer operations on the multiply-adds' ports
    /// (a shift and a mask), 4 per 32 multiply-adds at 8 x 2 vectors: read back, the widened
    /// values cost two loads and no arithmetic.
    const SPILL: bool = true;
    const W_WORDS: usize = 2;
    #[inline(always)]
    unsafe fn spill_w(p: *mut f32, w: (S::F, S::F)) {
        // SAFETY: `p` is valid for 2 x LANES writes (trait contract); the caller runs on S's ISA.
        unsafe {
            S::store(p, w.0);
            S::store(p.add(S::LANES), w.1);
        }
    }
    #[inline(always)]
    unsafe fn load_spilled(p: *const f32) -> (S::F, S::F) {
        // SAFETY: `p` is valid for 2 x LANES reads (trait contract); the caller runs on S's ISA.
        unsafe { (S::load(p), S::load(p.add(S::LANES))) }
    }
    #[inline(always)]
    unsafe fn dot(acc: S::F, a: (S::F, S::F), w: (S::F, S::F)) -> S::F {
        // SAFETY: the caller runs on S's ISA.
        unsafe { S::fma(a.1, w.1, S::fma(a.0, w.0, acc)) }
    }
}

/// Loads `src` (at most `S::LANES` elements) into a vector, the missing lanes set to `pad`.
#[inline(always)]
pub(crate) unsafe fn load_partial<S: Simd>(src: &[f32], pad: f32) -> S::F {
    let mut buf = [pad; MAX_LANES];
    buf[..src.len()].copy_from_slice(src);
    // SAFETY: `buf` holds MAX_LANES >= S::LANES elements; the caller runs on S's ISA.
    unsafe { S::load(buf.as_ptr()) }
}

/// Stores the first `dst.len()` (at most `S::LANES`) lanes of `v` into `dst`.
#[inline(always)]
pub(crate) unsafe fn store_partial<S: Simd>(dst: &mut [f32], v: S::F) {
    let mut buf = [0.0f32; MAX_LANES];
    // SAFETY: as above.
    unsafe { S::store(buf.as_mut_ptr(), v) };
    let n = dst.len();
    dst.copy_from_slice(&buf[..n]);
}

/// A lane-wise operation for [`map_in_place`]. A trait with an `#[inline(always)]` method rather
/// than a closure: a closure is a function of its own, compiled without the caller's
/// `#[target_feature]`s, and LLVM may leave it (and every intrinsic in it) out of line, as it
/// did for the quantiser's rounding (6 ns per element instead of a fraction).
pub(crate) trait Map<S: Simd> {
    unsafe fn apply(&self, v: S::F) -> S::F;
}

/// Applies `op` to every element of `x` in place, whole vectors then the tail (padded with 0).
#[inline(always)]
pub(crate) unsafe fn map_in_place<S: Simd>(x: &mut [f32], op: &impl Map<S>) {
    let mut chunks = x.chunks_exact_mut(S::LANES);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly LANES elements; the caller runs on S's ISA.
        unsafe { S::store(c.as_mut_ptr(), op.apply(S::load(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // SAFETY: the tail has fewer than LANES elements.
        unsafe { store_partial::<S>(tail, op.apply(load_partial::<S>(tail, 0.0))) };
    }
}

/// `e^x` for `x <= 88` (the softmax and erf arguments are never positive): Cephes' `expf`
/// (range reduction by `n = round(x log2 e)` with ln 2 split in two, a degree-5 minimax
/// polynomial on `[-ln2/2, ln2/2]`, scaling by `2^n`). Relative error at most 2.4e-7 (about
/// 2 ulp), checked against f64 in the tests. Below the smallest normal result (`x < -87.33`)
/// the portable body flushes to 0, and AVX-512's (`vscalefps`) rounds to the denormals down
/// to 0; elsewhere the two give the same bits.
#[inline(always)]
pub(crate) unsafe fn exp<S: Simd>(x: S::F) -> S::F {
    // SAFETY: the caller runs on S's ISA.
    unsafe { S::exp(x) }
}

/// The reduction and polynomial of [`exp`] for `xc` clamped to where they are accurate:
/// `(e, n)` with `e^xc = e 2^n`, `e` in about `[0.7, 1.42]`, `n` integral.
#[inline(always)]
pub(crate) unsafe fn exp_reduced<S: Simd>(xc: S::F) -> (S::F, S::F) {
    // SAFETY: pure lane arithmetic on S's ISA, which the caller guarantees.
    unsafe {
        let n = S::round(S::mul(xc, S::splat(std::f32::consts::LOG2_E)));
        let r = S::fma(n, S::splat(-0.693_359_4), xc);
        let r = S::fma(n, S::splat(2.121_944_4e-4), r);
        let mut p = S::splat(1.987_569_1e-4);
        p = S::fma(p, r, S::splat(1.398_2e-3));
        p = S::fma(p, r, S::splat(8.333_452e-3));
        p = S::fma(p, r, S::splat(4.166_579_6e-2));
        p = S::fma(p, r, S::splat(1.666_666_5e-1));
        p = S::fma(p, r, S::splat(0.5)); // Cephes: 5.0000001201e-1, which rounds to 0.5 in f32
        let r2 = S::mul(r, r);
        (S::add(S::fma(p, r2, r), S::splat(1.0)), n)
    }
}

/// [`exp`]'s portable body: `2^n` built from the exponent bits, so `x` is clamped to
/// `[-87.33, 88]` and results below the smallest normal are set to 0.
#[inline(always)]
unsafe fn exp_portable<S: Simd>(x: S::F) -> S::F {
    // SAFETY: pure lane arithmetic on S's ISA, which the caller guarantees.
    unsafe {
        let lo = S::splat(-87.336_55);
        let xc = S::min(S::max(x, lo), S::splat(88.0));
        let (e, n) = exp_reduced::<S>(xc);
        let y = S::mul(e, S::pow2i(n));
        S::select_ge(x, lo, y, S::splat(0.0))
    }
}

/// GELU, erf form: `0.5 v (1 + erf(v / sqrt 2))`, with `erf(v / sqrt 2) = w P(w^2) / Q(w^2)`
/// for `w` = `v` clamped to `[-GELU_CLAMP, GELU_CLAMP]` (beyond, erf is 1 in f32), a rational
/// approximation fitted for this (`scripts/fit-gelu.py`, near-minimax in erf's relative error:
/// 5.2e-8 in f64), degrees 6 and 4 in `w^2`: 16 instructions and a division per vector, where
/// Abramowitz and Stegun's 7.1.26 (`1 - (a1 t + ... + a5 t^5) e^{-x^2}`, `t = 1 / (1 + p|x|)`,
/// until 2026-11-27) took an exponential besides, about 31. The error with f32 arithmetic is
/// stated in the GELU tests (`tolerance::gelu`).
#[inline(always)]
pub(crate) unsafe fn gelu<S: Simd>(v: S::F) -> S::F {
    // SAFETY: pure lane arithmetic on S's ISA, which the caller guarantees.
    unsafe {
        let c = S::splat(GELU_CLAMP);
        let w = S::min(S::max(v, S::sub(S::splat(0.0), c)), c);
        let u = S::mul(w, w);
        // Horner's rule in both; at the clamp, `w P / Q` rounds to exactly +-1, so GELU of a
        // large negative value is exactly 0 (`h - h`; `gelu_saturates_exactly`).
        let mut p = S::fma(S::splat(GELU_P[6]), u, S::splat(GELU_P[5]));
        p = S::fma(p, u, S::splat(GELU_P[4]));
        p = S::fma(p, u, S::splat(GELU_P[3]));
        p = S::fma(p, u, S::splat(GELU_P[2]));
        p = S::fma(p, u, S::splat(GELU_P[1]));
        p = S::fma(p, u, S::splat(GELU_P[0]));
        let mut q = S::fma(S::splat(GELU_Q[4]), u, S::splat(GELU_Q[3]));
        q = S::fma(q, u, S::splat(GELU_Q[2]));
        q = S::fma(q, u, S::splat(GELU_Q[1]));
        q = S::fma(q, u, S::splat(GELU_Q[0]));
        let erf = S::div(S::mul(w, p), q);
        let h = S::mul(S::splat(0.5), v);
        S::fma(h, erf, h)
    }
}

/// Where [`gelu`]'s erf reaches 1 in f32: `3.92 sqrt 2` (`erf(3.92) = 1 - 2.8e-8`).
const GELU_CLAMP: f32 = 5.543_717_4;
/// [`gelu`]'s numerator, `P(u) = sum GELU_P[i] u^i` (`GELU_P[0]` is `sqrt(2 / pi)`, erf's
/// slope at 0 over `sqrt 2`).
const GELU_P: [f32; 7] = [
    0.797_884_5,
    0.070_683_785,
    0.008_940_172,
    0.000_327_176_68,
    6.268_924e-6,
    -4.326_229_7e-8,
    2.201_333_4e-10,
];
/// [`gelu`]'s denominator, `Q(u) = sum GELU_Q[i] u^i`.
const GELU_Q: [f32; 5] = [
    1.0,
    0.255_254_8,
    0.028_749_542,
    0.001_794_144,
    5.975_196_5e-5,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::to_bf16;

    /// The pair as the GEMM's packing stores it (`gemm::bf16::pair`).
    fn pair(x: f32, y: f32) -> u32 {
        u32::from(to_bf16(x).to_bits()) | (u32::from(to_bf16(y).to_bits()) << 16)
    }

    /// The bf16 roundings' sweep of bit patterns: every top half with low halves at and around
    /// the rounding boundaries, so ties, carries into the exponent, infinities, NaNs, zeros and
    /// denormals of both signs.
    fn bf16_sweep() -> Vec<f32> {
        let lows = [0u32, 1, 0x7fff, 0x8000, 0x8001, 0xffff];
        (0..=0xffffu32)
            .flat_map(|hi| lows.iter().map(move |lo| f32::from_bits((hi << 16) | lo)))
            .collect()
    }

    /// `S::store_bf16_pairs` against the scalar rounding (`gemm::to_bf16`, itself checked
    /// against `half`) over [`bf16_sweep`]; the pair partner is the same sweep reversed.
    #[inline(always)]
    unsafe fn pairs_match<S: Simd>() {
        let xs = bf16_sweep();
        let ys: Vec<f32> = xs.iter().rev().copied().collect();
        let mut got = [0u32; MAX_LANES];
        for (a, b) in xs.chunks_exact(S::LANES).zip(ys.chunks_exact(S::LANES)) {
            // SAFETY: the caller runs on S's ISA; `a`, `b` and `got` hold LANES elements.
            unsafe {
                S::store_bf16_pairs(got.as_mut_ptr(), S::load(a.as_ptr()), S::load(b.as_ptr()))
            };
            for ((&g, &x), &y) in got.iter().zip(a).zip(b) {
                assert_eq!(
                    g,
                    pair(x, y),
                    "{x:?} {y:?} ({:#x}, {:#x})",
                    x.to_bits(),
                    y.to_bits()
                );
            }
        }
    }

    /// Runs `$check::<S>()` for every `Simd` implementation this CPU runs, each inside a
    /// function compiled with its features.
    macro_rules! on_every_isa {
        ($check:ident) => {{
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
                unsafe fn on_avx512() {
                    // SAFETY: the features are enabled here.
                    unsafe { $check::<avx512::Avx512>() }
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn on_avx2() {
                    // SAFETY: the features are enabled here.
                    unsafe { $check::<avx2::Avx2>() }
                }
                let f = crate::isa::cpu_features();
                if f.supports(crate::Isa::Avx512) {
                    // SAFETY: the CPU has AVX-512 F/BW/VL.
                    unsafe { on_avx512() }
                }
                if f.supports(crate::Isa::Avx2) {
                    // SAFETY: the CPU has AVX2 and FMA.
                    unsafe { on_avx2() }
                }
            }
            #[cfg(target_arch = "aarch64")]
            {
                #[target_feature(enable = "neon")]
                unsafe fn on_neon() {
                    // SAFETY: the feature is enabled here.
                    unsafe { $check::<neon::Neon>() }
                }
                // SAFETY: NEON is part of every aarch64 CPU Rust targets.
                unsafe { on_neon() }
            }
        }};
    }

    #[test]
    fn store_bf16_pairs_is_the_scalar_rounding() {
        on_every_isa!(pairs_match);
    }

    /// `D::store_bf16` against the scalar rounding over the same sweep, in order.
    #[inline(always)]
    unsafe fn bf16_matches_dot<D: DotBf16>() {
        let xs = bf16_sweep();
        let mut got = [0u16; MAX_LANES];
        for a in xs.chunks_exact(D::S::LANES) {
            // SAFETY: the caller runs on D's ISA; `a` and `got` hold LANES elements.
            unsafe { D::store_bf16(got.as_mut_ptr(), D::S::load(a.as_ptr())) };
            for (&g, &x) in got.iter().zip(a) {
                assert_eq!(g, to_bf16(x).to_bits(), "{x:?} ({:#x})", x.to_bits());
            }
        }
    }

    /// `S::store_bf16` (through `Widen`, whose `store_bf16` is the default).
    #[inline(always)]
    unsafe fn bf16_matches<S: Simd>() {
        // SAFETY: the caller runs on S's ISA.
        unsafe { bf16_matches_dot::<Widen<S>>() }
    }

    #[test]
    fn store_bf16_is_the_scalar_rounding() {
        on_every_isa!(bf16_matches);
    }

    /// AVX-512 BF16's own conversion (`vcvtneps2bf16`) over the same sweep.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vcvtneps2bf16_is_the_scalar_rounding() {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
        unsafe fn check() {
            // SAFETY: the features are enabled here.
            unsafe { bf16_matches_dot::<avx512::Avx512Bf16>() }
        }
        let f = crate::isa::cpu_features();
        if !f.supports(crate::Isa::Avx512) || !f.avx512bf16 {
            eprintln!("no AVX-512 BF16: vcvtneps2bf16 is not checked");
            return;
        }
        // SAFETY: the CPU has AVX-512 F/BW/VL and BF16 (checked above).
        unsafe { check() }
    }

    /// What `D::spill_w` stores, `D::load_spilled` gives back as `D::load_w` loaded it: the
    /// same products, bit for bit, for weight pairs of every bf16 bit pattern times a few
    /// activation pairs (the GEMM's spilled weights reach the same multiply-adds). Likewise
    /// an activation pair broadcast from its two values (`D::bcast_values`, as the widened
    /// attention broadcasts Q and the weights) and from its bits (`D::bcast`).
    #[inline(always)]
    unsafe fn spill_round_trips<D: DotBf16>() {
        let l = D::S::LANES;
        // Every bf16 pattern first, paired with the same sweep reversed.
        let xs = bf16_sweep();
        let pairs: Vec<u32> = xs
            .iter()
            .zip(xs.iter().rev())
            .map(|(x, y)| (x.to_bits() >> 16) | (y.to_bits() & 0xffff_0000))
            .collect();
        let mut spill = vec![f32::NAN; l * D::W_WORDS];
        let (mut direct, mut back) = ([0.0f32; MAX_LANES], [0.0f32; MAX_LANES]);
        for w in pairs.chunks_exact(l).step_by(7) {
            // SAFETY: the caller runs on D's ISA; `w` holds LANES pairs, `spill` LANES x
            // W_WORDS words, the outputs LANES values.
            unsafe {
                let v = D::load_w(w.as_ptr());
                D::spill_w(spill.as_mut_ptr(), v);
                let u = D::load_spilled(spill.as_ptr());
                for pair in [0x3f80_4000u32, 0xc2f7_3d9a, 0x0080_ff7f] {
                    let (acc, a) = (D::S::splat(0.5), D::bcast(pair));
                    D::S::store(direct.as_mut_ptr(), D::dot(acc, a, v));
                    D::S::store(back.as_mut_ptr(), D::dot(acc, a, u));
                    for (x, y) in direct[..l].iter().zip(&back[..l]) {
                        assert_eq!(x.to_bits(), y.to_bits(), "{w:x?}");
                    }
                    let first = f32::from_bits(pair << 16);
                    let second = f32::from_bits(pair & 0xffff_0000);
                    let values = D::bcast_values(first, second);
                    D::S::store(back.as_mut_ptr(), D::dot(acc, values, v));
                    for (x, y) in direct[..l].iter().zip(&back[..l]) {
                        assert_eq!(x.to_bits(), y.to_bits(), "{pair:x} {w:x?}");
                    }
                }
            }
        }
    }

    /// [`spill_round_trips`] through `Widen` (the spilling vocabulary).
    #[inline(always)]
    unsafe fn widened_spill_round_trips<S: Simd>() {
        // SAFETY: the caller runs on S's ISA.
        unsafe { spill_round_trips::<Widen<S>>() }
    }

    #[test]
    fn spilled_weights_and_broadcast_values_give_the_same_products() {
        on_every_isa!(widened_spill_round_trips);
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
            unsafe fn check() {
                // SAFETY: the features are enabled here.
                unsafe { spill_round_trips::<avx512::Avx512Bf16>() }
            }
            let f = crate::isa::cpu_features();
            if f.supports(crate::Isa::Avx512) && f.avx512bf16 {
                // SAFETY: the CPU has AVX-512 F/BW/VL and BF16 (checked above).
                unsafe { check() }
            }
        }
    }

    /// AVX-512's `exp` (`vscalefps`) against the portable body on the same ISA: the same bits
    /// wherever that body's result is normal (x >= -87.33, through every integer `n` and the
    /// points between), the denormal result within 2^-149 of `e^x` in f64 below, 0 from
    /// -103.98 (and for -inf), and NaN to 0 as the portable body maps it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_exp_is_the_portable_exp() {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
        unsafe fn check(xs: &[f32]) {
            let mut fast = [0.0f32; 16];
            let mut portable = [0.0f32; 16];
            for x in xs.chunks_exact(16) {
                // SAFETY: AVX-512 is enabled here; the buffers hold 16 lanes.
                unsafe {
                    let v = avx512::Avx512::load(x.as_ptr());
                    avx512::Avx512::store(fast.as_mut_ptr(), avx512::Avx512::exp(v));
                    avx512::Avx512::store(portable.as_mut_ptr(), exp_portable::<avx512::Avx512>(v));
                }
                for ((&x, &f), &p) in x.iter().zip(&fast).zip(&portable) {
                    if x.is_nan() || x < -103.98 {
                        assert_eq!(f.to_bits(), 0, "{x}: {f}");
                    } else if x >= -87.336_55 {
                        assert_eq!(f.to_bits(), p.to_bits(), "{x}: {f} vs {p}");
                    } else {
                        let want = f64::from(x).exp();
                        assert!(
                            (f64::from(f) - want).abs() <= 2f64.powi(-149),
                            "{x}: {f} vs {want}"
                        );
                    }
                }
            }
        }
        if !crate::isa::cpu_features().supports(crate::Isa::Avx512) {
            eprintln!("no AVX-512: its exp is not checked");
            return;
        }
        let mut xs: Vec<f32> = (-1_200_000..=880_000).map(|i| i as f32 * 1e-4).collect();
        xs.extend([f32::NEG_INFINITY, f32::MIN, -1e30, f32::NAN, -0.0, 88.0]);
        xs.resize(xs.len().div_ceil(16) * 16, 0.0);
        // SAFETY: the CPU has AVX-512 F/BW/VL and FMA (checked above).
        unsafe { check(&xs) }
    }
    /// `S::transpose_block` moves each value to its transposed place, from a source with a row
    /// stride wider than the block.
    unsafe fn transposes<S: Simd>() {
        let (l, stride) = (S::LANES, S::LANES + 3);
        let src: Vec<u32> = (0..l * stride)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761))
            .collect();
        let mut dst = vec![0u32; l * l];
        // SAFETY: the caller runs on S's ISA; `src` holds l rows of `stride`, `dst` l x l.
        unsafe { S::transpose_block(src.as_ptr(), stride, dst.as_mut_ptr()) };
        for r in 0..l {
            for c in 0..l {
                assert_eq!(dst[c * l + r], src[r * stride + c], "({r}, {c})");
            }
        }
    }

    #[test]
    fn transpose_block_transposes() {
        on_every_isa!(transposes);
    }
}
