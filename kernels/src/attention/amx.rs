//! [`super::attention_bf16`] on AMX tiles (`tdpbf16ps`): the same bf16 operands, packed the
//! same way ([`super::pack_bf16_operands`] at 16 lanes), `Q K^T` and `P V` on the tiles and the
//! softmax in f32 on AVX-512.
//!
//! Queries go in blocks of 16 (one tile of rows). For a block:
//!
//! 1. **Scores.** Every key at once: for each 16-key group of the packed `K^T`, a C tile of
//!    16 x 16 scores is the sum over the head's 16-pair chunks of Q's rows (A: 16 rows of 16
//!    feature pairs) times the group's rows of those pairs (B: 16 rows of 16 keys' pairs). Four
//!    groups at a time, each A tile used four times; the scores go to a `16 x n` block.
//! 2. **Softmax**, exact rather than online (the block holds the whole row): scale, mask the
//!    keys past n with -inf, the row's maximum and `e^(s - max)` and their sum, the weights
//!    rounded to bf16 pairs as the other kernels pair them (in each run of 32 keys, key `lane`
//!    with key `16 + lane`).
//! 3. **Output.** For each 16-feature vector, a C tile is the sum over runs of 32 keys of the
//!    weights (A: 16 rows of 16 key pairs) times the packed V (B: 16 rows of key pairs, of 16
//!    features), four vectors at a time; the block is divided by the rows' sums into `out`.
//!
//! The tile operations go through [`TileOps`], so the same code runs on the hardware
//! ([`AmxTiles`]) and on its software model (`EmulatedTiles`), with which the tests hold this
//! kernel to the twin on CPUs without AMX. Heads whose size is not a multiple of 32 (a tile
//! row of feature pairs), and sequences shorter than the bf16 row threshold, take the AVX-512
//! BF16 kernel.

use super::{mask_tail, pack_bf16_operands, AttentionHead, AttentionScratch};
use crate::gemm::grow;
use crate::simd::avx512::Avx512;
use crate::simd::{self, DotBf16, Simd};
use crate::tiles::{AmxTiles, TileOps, TILE_BYTES, TILE_ROWS};

/// Lanes of AVX-512 and columns (f32 or bf16 pairs) of a tile.
const L: usize = 16;

/// Whether the tiles take this head: `d` a non-zero multiple of 32 and at least `min_rows`
/// tokens.
pub(crate) fn fits(p: &AttentionHead<'_>, min_rows: usize) -> bool {
    p.d > 0 && p.d.is_multiple_of(2 * L) && p.n > 0 && p.n >= min_rows
}

/// Attention with bf16 operands on the tiles where they take the head ([`fits`]), else on
/// AVX-512 through `D` (`vdpbf16ps`, or widened FMAs where the CPU issues those faster).
/// Safety: AMX is enabled for the process, and the caller runs with AVX-512 F, BW, VL, BF16,
/// FMA and F16C.
#[inline(always)]
pub(crate) unsafe fn attention_bf16_amx<D: DotBf16>(
    p: AttentionHead<'_>,
    scratch: &mut AttentionScratch,
    min_rows: usize,
) {
    p.check();
    // SAFETY: the caller's contract covers both paths.
    unsafe {
        if fits(&p, min_rows) {
            let mut tiles = AmxTiles::new();
            attention_bf16_tiles(p, scratch, &mut tiles)
        } else {
            super::attention_bf16::<D>(p, scratch)
        }
    }
}

/// Tiles 0..cnt (C) zeroed.
#[inline(always)]
unsafe fn zero_c<T: TileOps>(t: &mut T, cnt: usize) {
    // SAFETY: registers only; the caller's tiles are configured.
    unsafe {
        t.zero::<0>();
        if cnt > 1 {
            t.zero::<1>();
        }
        if cnt > 2 {
            t.zero::<2>();
        }
        if cnt > 3 {
            t.zero::<3>();
        }
    }
}

/// C tiles `0..cnt` += A (tile 4, loaded by the caller) times the B tiles at `b(j)`, rows
/// `ldb` bytes apart (loaded into tiles 5, 6, 7 and 5 again). Safety: each `b(j)` is valid for
/// 16 rows of 64 bytes.
#[inline(always)]
unsafe fn dp_row<T: TileOps>(t: &mut T, cnt: usize, b: impl Fn(usize) -> *const u8, ldb: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        t.load::<5>(b(0), ldb);
        t.dp_bf16::<0, 4, 5>();
        if cnt > 1 {
            t.load::<6>(b(1), ldb);
            t.dp_bf16::<1, 4, 6>();
        }
        if cnt > 2 {
            t.load::<7>(b(2), ldb);
            t.dp_bf16::<2, 4, 7>();
        }
        if cnt > 3 {
            t.load::<5>(b(3), ldb);
            t.dp_bf16::<3, 4, 5>();
        }
    }
}

/// C tiles `0..cnt` stored at `c(j)`, rows `ldc` bytes apart. Safety: each `c(j)` is valid
/// for writes of 16 rows of 64 bytes.
#[inline(always)]
unsafe fn store_c<T: TileOps>(t: &mut T, cnt: usize, c: impl Fn(usize) -> *mut u8, ldc: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        t.store::<0>(c(0), ldc);
        if cnt > 1 {
            t.store::<1>(c(1), ldc);
        }
        if cnt > 2 {
            t.store::<2>(c(2), ldc);
        }
        if cnt > 3 {
            t.store::<3>(c(3), ldc);
        }
    }
}

/// The kernel (module docs) on `tiles`. Safety: [`fits`] holds for some threshold and `p` was
/// checked; AVX-512 F, BW, VL and FMA; the tiles are configured (for [`AmxTiles`]).
#[inline(always)]
pub(crate) unsafe fn attention_bf16_tiles<T: TileOps>(
    mut p: AttentionHead<'_>,
    scratch: &mut AttentionScratch,
    t: &mut T,
) {
    debug_assert!(fits(&p, 1));
    let (n, d) = (p.n, p.d);
    // Feature pairs (a whole number of 16-pair chunks) and feature vectors.
    let (dp, vecs) = (d / 2, d / L);
    // Key groups of `K^T`, runs of 32 keys (the 16-pair chunks of `P V`), and the block's
    // row lengths: scores, and weights in pairs.
    let (groups, runs) = (n.div_ceil(L), n.div_ceil(2 * L));
    let (cols, wcols) = (runs * 2 * L, runs * L);
    let mut scores = std::mem::take(&mut scratch.tile_scores);
    let mut weights = std::mem::take(&mut scratch.tile_weights);
    let mut block = std::mem::take(&mut scratch.tile_out);
    grow(&mut scores, TILE_ROWS * cols, 0.0);
    grow(&mut weights, TILE_ROWS * wcols, 0);
    grow(&mut block, TILE_ROWS * d, 0.0);
    // SAFETY: AVX-512 (the caller's contract). Q gets whole tiles of rows, zero past n.
    let (q, kt, v) =
        unsafe { pack_bf16_operands::<Avx512>(&p, scratch, n.div_ceil(TILE_ROWS) * TILE_ROWS) };
    let (qp, ktp, vp) = (
        q.as_ptr().cast::<u8>(),
        kt.as_ptr().cast::<u8>(),
        v.as_ptr().cast::<u8>(),
    );
    let mut sums = [0.0f32; TILE_ROWS];
    for i0 in (0..n).step_by(TILE_ROWS) {
        let mr = TILE_ROWS.min(n - i0);
        // SAFETY: the tile reads and writes stay inside the packed operands and the blocks:
        // Q rows i0..i0 + 16 of `dp` pairs (the packing has whole tiles of rows); `K^T` group
        // g's pair rows at `(g * dp + pair) * 16` for g < groups; V pair rows below `runs *
        // 16`, `vecs` vectors each; scores `16 x cols`, weights `16 x wcols`, the output block
        // `16 x d`. Vector work: AVX-512 (the caller's contract), on whole vectors of rows the
        // tiles wrote (score columns below `groups * 16`).
        // The blocks' pointers are taken where the tiles use them, after the slices the vector
        // work writes through.
        unsafe {
            // 1. Scores.
            let sp = scores.as_mut_ptr().cast::<u8>();
            for g0 in (0..groups).step_by(4) {
                let cnt = 4.min(groups - g0);
                zero_c(t, cnt);
                for c in 0..dp / L {
                    t.load::<4>(qp.add((i0 * dp + c * L) * 4), dp * 4);
                    let b = |j: usize| ktp.add(((g0 + j) * dp + c * L) * TILE_BYTES);
                    dp_row(t, cnt, b, TILE_BYTES);
                }
                store_c(t, cnt, |j| sp.add((g0 + j) * TILE_BYTES), cols * 4);
            }
            // 2. Softmax of the real rows; the others weigh nothing.
            for (i, sum) in sums.iter_mut().enumerate() {
                let w = &mut weights[i * wcols..(i + 1) * wcols];
                if i >= mr {
                    w.fill(0);
                    continue;
                }
                let s = &mut scores[i * cols..(i + 1) * cols];
                *sum = softmax_row(s, w, n, p.scale);
            }
            // 3. Output.
            let (wp, op) = (
                weights.as_ptr().cast::<u8>(),
                block.as_mut_ptr().cast::<u8>(),
            );
            for u0 in (0..vecs).step_by(4) {
                let cnt = 4.min(vecs - u0);
                zero_c(t, cnt);
                for c in 0..runs {
                    t.load::<4>(wp.add(c * TILE_BYTES), wcols * 4);
                    let b = |j: usize| vp.add((c * L * vecs + u0 + j) * TILE_BYTES);
                    dp_row(t, cnt, b, vecs * TILE_BYTES);
                }
                store_c(t, cnt, |j| op.add((u0 + j) * TILE_BYTES), d * 4);
            }
            for (i, &sum) in sums.iter().enumerate().take(mr) {
                let f = Avx512::splat(1.0 / sum);
                let row = p.out.row_mut(i0 + i);
                for u in 0..vecs {
                    let o = Avx512::load(block.as_ptr().add(i * d + u * L));
                    Avx512::store(row.as_mut_ptr().add(u * L), Avx512::mul(o, f));
                }
            }
        }
    }
    scratch.tile_scores = scores;
    scratch.tile_weights = weights;
    scratch.tile_out = block;
}

/// One row's softmax over `n` keys: `s` (a whole number of runs of 32, the tiles' dot
/// products in its first `ceil(n / 16)` vectors) scaled, masked past n, and exponentiated
/// against the row's maximum; the weights rounded into `w` as pairs (keys `lane` and `16 +
/// lane` of each run); returns their sum, unrounded. Safety: AVX-512 F, BW, VL and FMA.
#[inline(always)]
unsafe fn softmax_row(s: &mut [f32], w: &mut [u32], n: usize, scale: f32) -> f32 {
    let groups = n.div_ceil(L);
    debug_assert!(s.len() >= groups * L && w.len() * 2 >= s.len());
    // SAFETY: the caller's contract; every vector read or written lies within `s` (groups
    // vectors) and `w` (runs vectors).
    unsafe {
        let scale = Avx512::splat(scale);
        let mut mx = Avx512::splat(f32::NEG_INFINITY);
        for g in 0..groups {
            let at = s.as_mut_ptr().add(g * L);
            let mut sv = Avx512::mul(Avx512::load(at), scale);
            if (g + 1) * L > n {
                sv = mask_tail::<Avx512>(sv, n - g * L);
            }
            Avx512::store(at, sv);
            mx = Avx512::max(mx, sv);
        }
        let m = Avx512::splat(Avx512::reduce_max(mx));
        let mut sum = Avx512::splat(0.0);
        for r in 0..groups.div_ceil(2) {
            let e0 = simd::exp::<Avx512>(Avx512::sub(Avx512::load(s.as_ptr().add(2 * r * L)), m));
            let e1 = if 2 * r + 1 < groups {
                simd::exp::<Avx512>(Avx512::sub(
                    Avx512::load(s.as_ptr().add((2 * r + 1) * L)),
                    m,
                ))
            } else {
                Avx512::splat(0.0)
            };
            sum = Avx512::add(sum, Avx512::add(e0, e1));
            Avx512::store_bf16_pairs(w.as_mut_ptr().add(r * L), e0, e1);
        }
        Avx512::reduce_add(sum)
    }
}

/// The attention tests' bounds (a file of `kernels/tests`).
#[cfg(test)]
#[path = "../../tests/common/attention.rs"]
mod bounds;

#[cfg(test)]
mod tests {
    //! The kernel on the tiles' software model, on any CPU with AVX-512: its operands, strides
    //! and blocks against the twin (`attention_bf16_ref`) within `tolerance::attention_bf16`,
    //! over sequence lengths at every query-block, key-group and run edge and head sizes of
    //! one to four tile rows of pairs, at a stride inside wider Q, K and V. On a CPU with AMX,
    //! `kernels/tests/attention.rs` holds the hardware to the same twin.

    use super::*;
    use crate::attention::attention_bf16_ref;
    use crate::gemm::MatMut;
    use crate::tiles::EmulatedTiles;
    use crate::tolerance;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
    unsafe fn emulated(p: AttentionHead<'_>, s: &mut AttentionScratch) {
        // SAFETY: AVX-512 is enabled here (the caller checked the CPU has it); the model's
        // tiles need no configuration.
        unsafe { attention_bf16_tiles(p, s, &mut EmulatedTiles::default()) }
    }

    fn check(n: usize, d: usize, score_size: f32, scratch: &mut AttentionScratch) {
        let ld = 3 * d + 5;
        let seed = (n * 31 + d) as u64;
        let q = crate::test_common::values(n * ld, seed, score_size);
        let k = crate::test_common::values(n * ld, seed + 1, 1.0);
        let v = crate::test_common::values(n * ld, seed + 2, 1.0);
        let scale = (d as f32).powf(-0.5);
        let run = |tiles: bool, scratch: &mut AttentionScratch| {
            let mut out = vec![f32::NAN; n * ld];
            let p = AttentionHead {
                n,
                d,
                q: &q[d..],
                ldq: ld,
                k: &k[d..],
                ldk: ld,
                v: &v[d..],
                ldv: ld,
                scale,
                out: MatMut::new(&mut out[d..], n, d, ld),
            };
            if tiles {
                p.check();
                // SAFETY: the test runs only where the CPU has AVX-512 (checked by the caller).
                unsafe { emulated(p, scratch) }
            } else {
                attention_bf16_ref(p, scratch)
            }
            out
        };
        let (got, want) = (run(true, scratch), run(false, scratch));
        let (score_abs, v_abs) = super::bounds::bounds(&q, &k, &v, (n, d, ld), scale);
        for i in 0..n {
            for c in 0..ld {
                let (g, w) = (got[i * ld + c], want[i * ld + c]);
                if !(d..2 * d).contains(&c) {
                    assert!(
                        g.is_nan(),
                        "n={n} d={d}: wrote outside the head at ({i}, {c})"
                    );
                    continue;
                }
                let tol = tolerance::attention_bf16(n, d, score_abs[i], v_abs[c]);
                assert!(
                    tolerance::within(g, w, tol),
                    "n={n} d={d} at ({i}, {}): {g} vs {w} (tol {tol})",
                    c - d
                );
            }
        }
    }

    fn avx512() -> bool {
        let on = crate::isa::cpu_features().supports(crate::Isa::Avx512);
        if !on {
            eprintln!("no AVX-512: the tile attention's model is not run");
        }
        on
    }

    /// Every edge: 1..=17 tokens, 31..=33, 47..=49, 64, 65, 100, 128 and 129, at head sizes
    /// 32, 64, 96 and 128; one scratch throughout, so that longer heads leave stale data
    /// behind for shorter ones.
    #[test]
    fn tiles_model_matches_the_twin() {
        if !avx512() {
            return;
        }
        let mut scratch = AttentionScratch::default();
        let ns = (1..=17).chain([31, 32, 33, 47, 48, 49, 64, 65, 100, 128, 129]);
        for n in ns.rev() {
            for d in [32, 64, 96, 128] {
                check(n, d, 1.0, &mut scratch);
            }
        }
    }

    /// Sharp softmaxes (scores up to about +-100, weights that underflow) and long sequences:
    /// the whole row of scores in one block.
    #[test]
    fn tiles_model_on_sharp_and_long_rows() {
        if !avx512() {
            return;
        }
        let mut scratch = AttentionScratch::default();
        for n in [300, 513] {
            for d in [32, 64] {
                check(n, d, 8.0, &mut scratch);
            }
        }
    }

    #[test]
    fn the_tiles_take_heads_of_whole_pair_rows() {
        let (q, mut out) = (vec![0.0f32; 64 * 40], vec![0.0f32; 64 * 40]);
        let mut fits_with = |n: usize, d: usize, min: usize| {
            let p = AttentionHead {
                n,
                d,
                q: &q,
                ldq: d,
                k: &q,
                ldk: d,
                v: &q,
                ldv: d,
                scale: 1.0,
                out: MatMut::new(&mut out, n, d, d),
            };
            fits(&p, min)
        };
        assert!(fits_with(20, 32, 1));
        assert!(fits_with(20, 64, 20));
        assert!(!fits_with(19, 64, 20));
        assert!(!fits_with(20, 48, 1));
        assert!(!fits_with(20, 16, 1));
        assert!(!fits_with(0, 32, 1));
        assert!(!fits_with(20, 0, 1));
    }
}
