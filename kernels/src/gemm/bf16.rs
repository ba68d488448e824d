//! The bf16 GEMM: weights stored as bfloat16 and activations rounded to bfloat16 as they are
//! packed, products summed in f32 (`vdpbf16ps` on AVX-512 BF16, the same operations widened to
//! f32 elsewhere: bit-identical results on every SIMD path). Half the weight bytes of f32 and
//! twice the multiply-adds per instruction, at bfloat16's 8-bit significand on both operands.

use half::bf16;

use super::kernel::{self, from};
use super::{
    grow, interleave, panel_height, panel_rows, ALayout, ASource, Gemm, GemmScratch, PackTmp,
    PackedA, PackedAMut, Prefetch, Weights, MC, PANEL,
};
use crate::simd::{DotBf16, Simd};

/// `f32` to bfloat16, rounded to nearest (ties to even), with denormals flushed to a signed
/// zero: `vdpbf16ps` reads denormal inputs as zero, so flushing them when packing makes every
/// path multiply the same values. NaN stays NaN.
pub fn to_bf16(x: f32) -> bf16 {
    bf16::from_bits(bf16_bits(x))
}

/// [`to_bf16`]'s bits, by integer arithmetic (the packing of A calls it per element): add
/// just under half a bf16 step, plus one when the kept part is odd (ties to even), and keep the
/// top 16 bits; zeros and denormals become a signed zero, NaN a quiet NaN.
#[inline(always)]
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7f80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return ((b >> 16) | 0x0040) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Length of packed bf16 weights for `n x k`: whole panels of [`PANEL`] channels, K padded to
/// even.
pub fn packed_len_bf16(n: usize, k: usize) -> usize {
    n.div_ceil(PANEL) * PANEL * k.div_ceil(2) * 2
}

/// Where [`pack_weights_bf16`] puts element `(j, kk)` of an `n x k` matrix: panel `j / 32`,
/// then the pair `kk / 2` (64 values: the 32 channels' pairs), then the channel, then `kk % 2`.
pub fn packed_index_bf16(j: usize, kk: usize, k: usize) -> usize {
    let kp = k.div_ceil(2) * 2;
    (j / PANEL) * PANEL * kp + (kk / 2) * PANEL * 2 + (j % PANEL) * 2 + kk % 2
}

/// Packs row-major f32 weights (`n x k`) as bf16 ([`to_bf16`]) in the layout the bf16
/// microkernels read ([`packed_index_bf16`]; zero past `n` and in the K padding).
pub fn pack_weights_bf16(w: &[f32], n: usize, k: usize) -> Vec<bf16> {
    assert_eq!(w.len(), n * k, "pack_weights_bf16: w is not n x k");
    let mut out = vec![bf16::ZERO; packed_len_bf16(n, k)];
    for (j, row) in w.chunks_exact(k.max(1)).take(n).enumerate() {
        for (kk, &x) in row.iter().enumerate() {
            out[packed_index_bf16(j, kk, k)] = to_bf16(x);
        }
    }
    out
}

/// Float weights packed for the f32 GEMM (f32 or f16, [`super::pack_weights`]'s panels)
/// re-packed as bf16 panels, equal to `pack_weights_bf16` of their values: both layouts hold
/// the same 32 channels per panel, so each panel is converted in one sequential pass (the
/// loading of a model for bf16 compute, `berth::fast::FastModel::use_bf16`). bf16 weights are
/// returned as they are; `None` for int8. Panics if `w` is not packed for `n x k` (a caller's
/// bug, as in [`super::Gemm`]).
pub fn repack_weights_bf16(w: Weights<'_>, n: usize, k: usize) -> Option<Vec<bf16>> {
    match w {
        Weights::F32(p) => Some(repack_panels(n, k, |i| p[i])),
        Weights::F16(p) => Some(repack_panels(n, k, |i| p[i].to_f32())),
        Weights::Bf16(p) => Some(p.to_vec()),
        Weights::I8(_) => None,
    }
}

/// [`repack_weights_bf16`] over the values of packed float panels, `value(i)` the `i`-th.
fn repack_panels(n: usize, k: usize, value: impl Fn(usize) -> f32) -> Vec<bf16> {
    let kp = k.div_ceil(2) * 2;
    let mut out = vec![bf16::ZERO; packed_len_bf16(n, k)];
    for p in 0..n.div_ceil(PANEL) {
        let (src, dst) = (p * PANEL * k, p * PANEL * kp);
        for kk in 0..k {
            for c in 0..PANEL {
                out[dst + (kk / 2) * PANEL * 2 + c * 2 + kk % 2] =
                    to_bf16(value(src + kk * PANEL + c));
            }
        }
    }
    out
}

/// The bf16 pair `(x0, x1)` as the packing stores it: `x0` in the low half.
#[inline(always)]
pub(super) fn pair(x0: f32, x1: f32) -> u32 {
    u32::from(bf16_bits(x0)) | (u32::from(bf16_bits(x1)) << 16)
}

/// The blocked bf16 GEMM over the microkernel `MR x (NV * LANES)` of `D`, which must be the ISA
/// the caller runs on. K is not blocked: a packed A block of MC rows is at most 256 x K/2 u32
/// (768 KiB for BERT's deepest K, 3072), L2-resident like int8's. With `TAIL` above 0 (and
/// below MR), a block's last rows, where they number at most TAIL, run as one tile of TAIL
/// rows (a short text's few tokens).
#[inline(always)]
pub(crate) unsafe fn gemm_bf16<D: DotBf16, const MR: usize, const NV: usize, const TAIL: usize>(
    p: Gemm<'_>,
    scratch: &mut GemmScratch,
) {
    // The spill buffer is taken out of the scratch for the call (moving the vector, not its
    // contents) so that the packing can borrow the rest.
    let mut spill = std::mem::take(&mut scratch.widened);
    // SAFETY: the caller runs on D's ISA (this function's contract).
    unsafe { blocks_bf16::<D, MR, NV, TAIL>(p, ASource::Own(scratch), &mut spill) };
    scratch.widened = spill;
}

/// [`gemm_bf16`] over A packed beforehand, all of its rows, by [`pack_bf16`] of the same `D`,
/// `MR` and `TAIL` (one packing that several threads' parts of N share), with `spill` the
/// calling thread's buffer for widened weights. `D` must be the ISA the caller runs on; panics
/// if `a` holds fewer rows than the packing of M takes.
#[inline(always)]
pub(crate) unsafe fn gemm_bf16_packed<
    D: DotBf16,
    const MR: usize,
    const NV: usize,
    const TAIL: usize,
>(
    p: Gemm<'_>,
    a: &PackedA,
    spill: &mut Vec<f32>,
) {
    // SAFETY: the caller runs on D's ISA (this function's contract).
    unsafe { blocks_bf16::<D, MR, NV, TAIL>(p, ASource::Packed(a), spill) }
}

/// Rounds and packs rows `rows` of `p`'s A into `out` (row `rows.start` at its row 0) as
/// [`gemm_bf16`] packs a block of them: `rows.start` must be a multiple of MR, `rows` end at a
/// micro-panel boundary or at `p`'s last row (where the tail is), and `out` hold
/// [`panel_rows`] of `rows.len()`. What [`gemm_bf16_packed`] reads once every part has been
/// packed.
#[inline(always)]
pub(crate) unsafe fn pack_bf16<D: DotBf16, const MR: usize, const TAIL: usize>(
    p: &Gemm<'_>,
    rows: std::ops::Range<usize>,
    out: PackedAMut<'_>,
    tmp: &mut PackTmp,
) {
    p.check();
    let a = &p.a[rows.start * p.lda..];
    // SAFETY: the caller runs on D's ISA (this function's contract).
    unsafe { pack_a_bf16::<D, MR, TAIL>(a, p.lda, rows.len(), p.k, &mut tmp.rows_bf16, out.bf16) };
}

/// [`gemm_bf16`]'s loops.
#[inline(always)]
unsafe fn blocks_bf16<D: DotBf16, const MR: usize, const NV: usize, const TAIL: usize>(
    mut p: Gemm<'_>,
    mut source: ASource<'_>,
    spill: &mut Vec<f32>,
) {
    p.check();
    let Weights::Bf16(w) = p.w else {
        panic!("gemm: the table routed other weights here");
    };
    let l = D::S::LANES;
    let nr = NV * l;
    debug_assert!(PANEL.is_multiple_of(nr));
    let (m, n, k) = (p.m(), p.n(), p.k);
    if m == 0 || n == 0 {
        return;
    }
    let steps = k.div_ceil(2);
    // Blocks of whole micro-panels, so that A packed whole has each block's rows where a
    // block's packing would put them.
    let mc_step = MC / MR * MR;
    let words = D::A_WORDS;
    let layout = ALayout::of(&p).bf16_words(words);
    source.check(layout, panel_rows::<MR, TAIL>(m));
    let c_ptr = p.c.as_mut_ptr();
    // The weights as u32 pairs, read only by unaligned vector loads (bf16 data need not be
    // 4-aligned).
    let wp = w.as_ptr().cast::<u32>();
    // Where loading the weights costs arithmetic (`D::SPILL`: widening), a block of more than
    // one micro-panel has its first keep one NR slice's weights as loaded, for the others to
    // read back: the widening costs 1/(micro-panels) of what it would in every kernel. The
    // same values reach the same multiply-adds, so the results are unchanged.
    let spilling = D::SPILL && m > MR;
    if spilling {
        grow(spill, steps * nr * D::W_WORDS, 0.0);
    }
    let spill_ptr = spill.as_mut_ptr();
    for ic in (0..m).step_by(mc_step) {
        let mc = mc_step.min(m - ic);
        // The packed rows of this block: row `ir` of the block is row `base + ir` of `packed`
        // (a match, not a closure, as in the int8 driver).
        let (packed, base) = match &mut source {
            ASource::Own(scratch) => {
                let GemmScratch { a, tmp, .. } = &mut **scratch;
                let out = a.rows_mut(layout, panel_rows::<MR, TAIL>(mc)).bf16;
                let a_ic = &p.a[ic * p.lda..];
                // SAFETY: the caller runs on D's ISA.
                unsafe { pack_a_bf16::<D, MR, TAIL>(a_ic, p.lda, mc, k, &mut tmp.rows_bf16, out) };
                (&*a, 0)
            }
            ASource::Packed(a) => (&**a, ic),
        };
        // Where the NR slice at column `j` starts in its panel, in pairs.
        let slice_at = |j: usize| (j / PANEL) * PANEL * steps + j % PANEL;
        for jr in (0..n).step_by(nr) {
            let nc = nr.min(n - jr);
            let w_off = slice_at(jr);
            // The next slice's weights (steps rows of NR pairs; `w` counts bf16 values).
            let next = if jr + nr < n {
                let len = 2 * ((steps.max(1) - 1) * PANEL + nr);
                Prefetch::new(w, 2 * slice_at(jr + nr), len, mc.div_ceil(MR))
            } else {
                Prefetch::NONE
            };
            for ir in (0..mc).step_by(MR) {
                next.part(ir / MR);
                let out = p.tile_out(c_ptr, (ic + ir, jr), (MR.min(mc - ir), nc), true, true);
                let a = packed.bf16[(base + ir) * steps * words..].as_ptr();
                // Not sliced: with k = 0 there are no weights, and none are read.
                let wq = wp.wrapping_add(w_off);
                let spilled = spill_ptr.cast_const().cast();
                // SAFETY: `check` validated every size; the tile reads the packed A (its
                // micro-panel's MR or TAIL rows x steps pairs of `words` u32 from row
                // `base + ir`: the packing holds whole micro-panels), `steps` rows of NR pairs
                // PANEL apart from `w_off` inside the slice's panel, or the spill (grown above
                // to `steps` rows of NR x W_WORDS, written for this slice by the block's first
                // micro-panel, `ir` = 0, before the others read it), and C at (row, jr) with
                // mr x nc valid; the caller runs on D's ISA.
                unsafe {
                    match (
                        spilling && mc > MR,
                        ir,
                        panel_height::<MR, TAIL>(ir, mc) == MR,
                    ) {
                        (false, _, true) => kernel::run_bf16::<D, MR, NV, { from::PACKED }>(
                            steps, a, wq, spill_ptr, &out,
                        ),
                        (false, _, false) => kernel::run_bf16::<D, TAIL, NV, { from::PACKED }>(
                            steps, a, wq, spill_ptr, &out,
                        ),
                        // With more than MR rows the first micro-panel is a whole one.
                        (true, 0, _) => kernel::run_bf16::<D, MR, NV, { from::PACKED_AND_SPILL }>(
                            steps, a, wq, spill_ptr, &out,
                        ),
                        (true, _, true) => kernel::run_bf16::<D, MR, NV, { from::SPILLED }>(
                            steps, a, spilled, spill_ptr, &out,
                        ),
                        (true, _, false) => kernel::run_bf16::<D, TAIL, NV, { from::SPILLED }>(
                            steps, a, spilled, spill_ptr, &out,
                        ),
                    }
                };
            }
        }
    }
}

/// Rounds `mc` rows of A to bf16 and packs them into MR-row micro-panels of pairs, the last of
/// TAIL rows where [`panel_rows`] says: panel `q` holds, for each pair of k, the pairs of its
/// rows (zero past `k` and past `mc`), each as `D::A_WORDS` u32 (the pair, or its two values
/// widened to f32). Each panel's rows are rounded into `rows` (grown to MR x `k.div_ceil(2)`
/// pairs) first, then interleaved. Safety: the caller runs on D's ISA.
#[inline(always)]
unsafe fn pack_a_bf16<D: DotBf16, const MR: usize, const TAIL: usize>(
    a: &[f32],
    lda: usize,
    mc: usize,
    k: usize,
    rows: &mut Vec<u32>,
    out: &mut [u32],
) {
    let steps = k.div_ceil(2);
    // u32 words of a row: its pairs, or (widened) its values, rounded, as f32.
    let words = steps * D::A_WORDS;
    grow(rows, MR * words, 0);
    let rows = &mut rows[..MR * words];
    for q in 0..mc.div_ceil(MR) {
        let h = panel_height::<MR, TAIL>(q * MR, mc);
        let rows = &mut rows[..h * words];
        for (r, dst) in rows.chunks_exact_mut(words.max(1)).enumerate() {
            let row = q * MR + r;
            if row >= mc {
                dst.fill(0);
                continue;
            }
            let src = &a[row * lda..row * lda + k];
            // SAFETY: the caller runs on D's ISA.
            unsafe {
                match D::A_WORDS {
                    1 => round_row_bf16::<D>(src, dst),
                    _ => round_row_widened::<D>(src, dst),
                }
            };
        }
        let at = q * MR * words;
        let panel = &mut out[at..at + h * words];
        // One pair of every row at a time: a u32 each, or (widened) the pair's two values.
        match (D::A_WORDS, h == MR) {
            (1, true) => interleave::<u32, MR, 1>(rows, panel),
            (_, true) => interleave::<u32, MR, 2>(rows, panel),
            (1, false) => interleave::<u32, TAIL, 1>(rows, panel),
            (_, false) => interleave::<u32, TAIL, 2>(rows, panel),
        }
    }
}

/// Rounds `src` to bf16 ([`to_bf16`]) into `dst` as f32 bits (each value's bf16 in the top
/// half), then zeros to `dst`'s end (an odd length's last pair): the widened kernels' packed
/// values, a pair being two consecutive ones. Whole vectors by [`Simd::store_bf16_pairs`] of
/// zeros and the values (a pair's second value is its top half), the tail one at a time.
/// Safety: the caller runs on D's ISA.
#[inline(always)]
unsafe fn round_row_widened<D: DotBf16>(src: &[f32], dst: &mut [u32]) {
    assert!(dst.len() >= src.len(), "round_row_widened: lengths");
    let l = D::S::LANES;
    let body = src.len() / l * l;
    for i in (0..body).step_by(l) {
        // SAFETY: `i + LANES <= body <= src.len() <= dst.len()`: LANES values read and as many
        // u32 written; the caller runs on D's ISA.
        unsafe {
            let zero = D::S::splat(0.0);
            let v = D::S::load(src.as_ptr().add(i));
            D::S::store_bf16_pairs(dst.as_mut_ptr().add(i), zero, v);
        }
    }
    for (d, &x) in dst[body..].iter_mut().zip(&src[body..]) {
        *d = u32::from(bf16_bits(x)) << 16;
    }
    dst[src.len()..].fill(0);
}

/// Rounds `src` to bf16 ([`to_bf16`]) into the pairs `dst` (`src.len().div_ceil(2)` of them,
/// the first of each in the low half; an odd length's last pair padded with zero bits): whole
/// vectors by [`DotBf16::store_bf16`], the tail one value at a time. Safety: the caller runs
/// on D's ISA.
#[inline(always)]
pub(super) unsafe fn round_row_bf16<D: DotBf16>(src: &[f32], dst: &mut [u32]) {
    assert_eq!(dst.len(), src.len().div_ceil(2), "round_row_bf16: lengths");
    let l = D::S::LANES;
    let body = src.len() / l * l;
    let out = dst.as_mut_ptr().cast::<u16>();
    for i in (0..body).step_by(l) {
        // SAFETY: `i + LANES <= body <= src.len()` values are read and as many u16 written,
        // inside `dst`'s `2 * dst.len() >= src.len()` halves; the caller runs on D's ISA.
        unsafe { D::store_bf16(out.add(i), D::S::load(src.as_ptr().add(i))) };
    }
    let mut pairs = src[body..].chunks_exact(2);
    // `body` is even (LANES is), so the tail starts on a pair.
    for (d, two) in dst[body / 2..].iter_mut().zip(pairs.by_ref()) {
        *d = pair(two[0], two[1]);
    }
    if let [last] = pairs.remainder() {
        dst[dst.len() - 1] = pair(*last, 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer rounding is `half`'s (round to nearest, ties to even; NaN quiet) on every
    /// normal, infinite and NaN input of a sweep over the bit patterns, and flushes denormals.
    #[test]
    fn bf16_bits_is_round_to_nearest_even() {
        let mut checked = 0;
        for hi in 0..=0xffffu32 {
            for lo in [
                0u32,
                1,
                0x7fff,
                0x8000,
                0x8001,
                0xffff,
                hi.wrapping_mul(2654435761) & 0xffff,
            ] {
                let x = f32::from_bits((hi << 16) | lo);
                let got = bf16_bits(x);
                if x.is_nan() {
                    assert!(bf16::from_bits(got).is_nan(), "{x:?}");
                } else if x.is_subnormal() || x == 0.0 {
                    assert_eq!(got, ((x.to_bits() >> 16) & 0x8000) as u16, "{x:?}");
                } else {
                    assert_eq!(
                        got,
                        bf16::from_f32(x).to_bits(),
                        "{x:?} ({:#010x})",
                        x.to_bits()
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 7 << 16);
    }
}
