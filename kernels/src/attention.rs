//! Fused attention for one (sequence, head): `softmax(scale Q K^T) V`, FlashAttention-style.
//!
//! Keys and values go in tiles (as many keys as keep the tile's `K^T` and V rows within about
//! 64 KiB, in pairs of vectors, at most `TILE_VECS * LANES`: 128 keys on AVX-512 at head sizes
//! 32 and 64); queries in blocks of `MR` rows, which all pass over a tile while it is cached. For each
//! (tile, block) the block's scores (`MR x tile`, on the stack: never more of the score
//! matrix) come from `K^T` packed in vector-wide key groups, the rows' running maxima and sums
//! take the online-softmax update (the block's output, in registers, is rescaled by
//! `e^(m_old - m_new)` when a maximum rises), and `P V` for the tile is added (V copied once
//! per call into contiguous rows). Between tiles a block's unnormalised output waits in `out`;
//! the last tile divides it by the sums.
//!
//! There is no mask: the engine runs padding-free (each sequence holds only its real tokens), so
//! every key takes part; keys past the sequence's end inside the last tile are set to -inf
//! before the exponential, which makes their probability exactly 0.

use crate::gemm::{grow, to_bf16, MatMut};
use crate::simd::{self, DotBf16, Simd, MAX_LANES};

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;

/// Query rows per block: on AVX-512 (32 registers of 16 lanes) in f32 and widened bf16, 8 rows
/// of at most 2 output vectors, so that the scores' and `P V`'s 16 accumulators hide the FMAs'
/// latency; on AVX2 (16 registers of 8 lanes) 6 rows of at most 2 (12 accumulators); elsewhere
/// (NEON), and with `vdpbf16ps`, 4, with as many output vectors as a row has up to 8.
const ROWS: usize = 4;
const ROWS_WIDE: usize = 8;
const ROWS_AVX2: usize = 6;
/// The most vectors of keys per tile.
const TILE_VECS: usize = 8;
/// The most keys a tile holds (AVX-512's 16 lanes x 8).
const MAX_KT: usize = MAX_LANES * TILE_VECS;

/// One head of one sequence: `n` queries, keys and values of `d` features, read from row-major
/// matrices with row strides `ldq`, `ldk`, `ldv` (a head's columns inside the layer's Q, K and
/// V); the output goes to `out` (`n x d`).
#[derive(Debug)]
pub struct AttentionHead<'a> {
    pub n: usize,
    pub d: usize,
    pub q: &'a [f32],
    pub ldq: usize,
    pub k: &'a [f32],
    pub ldk: usize,
    pub v: &'a [f32],
    pub ldv: usize,
    /// Multiplies every score before the softmax (`1 / sqrt(d)`).
    pub scale: f32,
    pub out: MatMut<'a>,
}

impl AttentionHead<'_> {
    /// Panics unless every operand holds the rows and columns it must.
    fn check(&self) {
        let (n, d) = (self.n, self.d);
        let holds = |len: usize, ld: usize| n == 0 || (ld >= d && len >= (n - 1) * ld + d);
        assert!(holds(self.q.len(), self.ldq), "attention: q too short");
        assert!(holds(self.k.len(), self.ldk), "attention: k too short");
        assert!(holds(self.v.len(), self.ldv), "attention: v too short");
        assert_eq!(
            (self.out.rows(), self.out.cols()),
            (n, d),
            "attention: out is not n x d"
        );
    }
}

/// Reused buffers: packed `K^T` and V's contiguous copy (for bf16, Q, `K^T` and V as bf16
/// pairs, and Q's values where the pairs are widened), the rows' running maxima and sums, the
/// reference twins' score row, and the AMX kernel's blocks.
#[derive(Clone, Debug, Default)]
pub struct AttentionScratch {
    kt: Vec<f32>,
    v: Vec<f32>,
    stats: Vec<f32>,
    row: Vec<f64>,
    q_pairs: Vec<u32>,
    q_wide: Vec<f32>,
    kt_rows: Vec<u32>,
    kt_pairs: Vec<u32>,
    v_pairs: Vec<u32>,
    /// The AMX kernel's block of scores, its weights as bf16 pairs, and its output block.
    #[cfg(target_arch = "x86_64")]
    tile_scores: Vec<f32>,
    #[cfg(target_arch = "x86_64")]
    tile_weights: Vec<u32>,
    #[cfg(target_arch = "x86_64")]
    tile_out: Vec<f32>,
}

/// The reference twin: scores, softmax and the weighted sum in f64, exactly as written (its
/// score row lives in the scratch: the scalar path allocates nothing once it has grown).
pub fn attention_ref(p: AttentionHead<'_>, scratch: &mut AttentionScratch) {
    reference(p, scratch, f64::from, |w| w);
}

/// The reference twin of the bf16 kernel ([`attention_bf16`]'s operands in f64): Q, K and V
/// rounded to bfloat16 ([`to_bf16`]), scores and softmax in f64, and each unnormalised weight
/// `e^(s - max)` rounded to bfloat16 before it multiplies V, divided by the sum of the
/// unrounded weights, as the kernel does.
pub fn attention_bf16_ref(p: AttentionHead<'_>, scratch: &mut AttentionScratch) {
    fn bf16(x: f32) -> f64 {
        f64::from(to_bf16(x).to_f32())
    }
    reference(p, scratch, bf16, |w| bf16(w as f32));
}

/// The twins' body: Q, K and V read through `operand`, and each softmax weight through
/// `weight` where it multiplies V.
fn reference(
    mut p: AttentionHead<'_>,
    scratch: &mut AttentionScratch,
    operand: fn(f32) -> f64,
    weight: fn(f64) -> f64,
) {
    p.check();
    let (n, d) = (p.n, p.d);
    if scratch.row.len() < n {
        scratch.row.resize(n, 0.0);
    }
    let s = &mut scratch.row[..n];
    for i in 0..n {
        for (j, sj) in s.iter_mut().enumerate() {
            let dot: f64 = (0..d)
                .map(|c| operand(p.q[i * p.ldq + c]) * operand(p.k[j * p.ldk + c]))
                .sum();
            *sj = dot * f64::from(p.scale);
        }
        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for sj in s.iter_mut() {
            *sj = (*sj - m).exp();
            sum += *sj;
        }
        let row = p.out.row_mut(i);
        for (c, out) in row.iter_mut().enumerate() {
            let o: f64 = (0..n)
                .map(|j| weight(s[j]) * operand(p.v[j * p.ldv + c]))
                .sum();
            *out = (o / sum) as f32;
        }
    }
}

/// The fused kernel, generic SIMD body (module docs): specialised on the number of output
/// vectors per row (`d / LANES`, rounded up) so that the block's output stays in registers.
#[inline(always)]
pub(crate) unsafe fn attention<S: Simd>(p: AttentionHead<'_>, scratch: &mut AttentionScratch) {
    p.check();
    // SAFETY: the caller runs on S's ISA (the contract of every body below).
    unsafe {
        match p.d.div_ceil(S::LANES) {
            0 => {}
            // AVX-512: 8 rows, at most 2 output vectors at a time (a row's V vectors are
            // read once per pair of them).
            1 if S::LANES >= 16 => attention_dv::<S, ROWS_WIDE, 1>(p, scratch),
            _ if S::LANES >= 16 => attention_dv::<S, ROWS_WIDE, 2>(p, scratch),
            // AVX2 (16 registers): 6 rows, at most 2 output vectors at a time (12 accumulators,
            // 2 key or V vectors and a broadcast).
            1 if S::LANES == 8 => attention_dv::<S, ROWS_AVX2, 1>(p, scratch),
            _ if S::LANES == 8 => attention_dv::<S, ROWS_AVX2, 2>(p, scratch),
            1 => attention_dv::<S, ROWS, 1>(p, scratch),
            2 => attention_dv::<S, ROWS, 2>(p, scratch),
            3 => attention_dv::<S, ROWS, 3>(p, scratch),
            4 => attention_dv::<S, ROWS, 4>(p, scratch),
            // Wider heads go 8 vectors of output features at a time.
            _ => attention_dv::<S, ROWS, 8>(p, scratch),
        }
    }
}

/// Packs `K^T` into `kt` in groups of LANES keys: group g holds, for each feature c, keys
/// `g*L .. g*L + L` (zero past n).
#[inline(always)]
unsafe fn pack_kt<S: Simd>(p: &AttentionHead<'_>, kt: &mut Vec<f32>) {
    let (n, d, l) = (p.n, p.d, S::LANES);
    grow(kt, n.div_ceil(l) * d * l, 0.0);
    // SAFETY: the caller runs on S's ISA; `transpose_groups`' contract holds for `k` (rows
    // below n at columns below d: `check`) and `kt` (groups x d rows of l).
    unsafe { transpose_groups::<S>(p.k.as_ptr().cast(), p.ldk, n, d, kt.as_mut_ptr().cast()) };
}

/// Copies V's `n` rows of `d` features into `v`, `d` apart. Read in place, rows a layer's
/// Q, K, V width apart (9,216 bytes for BERT-base) fall into a few of L1's sets and evict one
/// another.
fn pack_v(p: &AttentionHead<'_>, v: &mut Vec<f32>) {
    let (n, d) = (p.n, p.d);
    grow(v, n * d, 0.0);
    for (j, row) in v[..n * d].chunks_exact_mut(d).enumerate() {
        row.copy_from_slice(&p.v[j * p.ldv..j * p.ldv + d]);
    }
}

/// `dst[(g * cols + c) * L + lane] = src[(g * L + lane) * ld + c]` for the `rows` rows and
/// `cols` columns of `src` (32-bit values), in groups of `L = S::LANES` rows, zero past the
/// last row: whole `L x L` blocks by [`Simd::transpose_block`], the rest one by one. Safety:
/// S's ISA; `src` valid for `rows` rows of `cols` values `ld` apart, `dst` for
/// `ceil(rows / L) * cols * L` writes.
#[inline(always)]
unsafe fn transpose_groups<S: Simd>(
    src: *const u32,
    ld: usize,
    rows: usize,
    cols: usize,
    dst: *mut u32,
) {
    let l = S::LANES;
    // SAFETY: the contract above; a whole block reads rows `g l .. g l + l` (below `rows`) at
    // columns `c .. c + l` (below `cols`).
    unsafe {
        for g in 0..rows.div_ceil(l) {
            let keys = l.min(rows - g * l);
            let out = dst.add(g * cols * l);
            let mut c = 0;
            if keys == l {
                while c + l <= cols {
                    S::transpose_block(src.add(g * l * ld + c), ld, out.add(c * l));
                    c += l;
                }
            }
            for c in c..cols {
                for lane in 0..l {
                    let x = if lane < keys {
                        *src.add((g * l + lane) * ld + c)
                    } else {
                        0
                    };
                    *out.add(c * l + lane) = x;
                }
            }
        }
    }
}

/// The keys of one tile for head size `d`: as many as keep the tile's `K^T` and V rows within
/// about 64 KiB (128 keys at head size 64: 0.99x the time of 64-key tiles on BERT-base 1 x 512,
/// where the tile then sits in L2), a whole number of key-vector pairs, at most `MAX_KT`.
fn tile_keys(d: usize, l: usize) -> usize {
    let pairs = (8192 / d.max(1) / (2 * l)).max(1);
    (pairs * 2 * l).min(TILE_VECS * l)
}

/// The kernel for heads of at most `DV` output vectors per row. Key tiles are the outer loop
/// (a tile's `K^T` and V rows stay in L1 while every query block passes over them); each query
/// block keeps its running maxima and sums in scratch and its output in `out`, loaded into
/// registers (`MR x DV` vectors) for the tile and stored back.
#[inline(always)]
unsafe fn attention_dv<S: Simd, const MR: usize, const DV: usize>(
    mut p: AttentionHead<'_>,
    scratch: &mut AttentionScratch,
) {
    let (n, d) = (p.n, p.d);
    if n == 0 {
        return;
    }
    let l = S::LANES;
    let kt_len = tile_keys(d, l);
    // SAFETY: the caller runs on S's ISA.
    unsafe { pack_kt::<S>(&p, &mut scratch.kt) };
    pack_v(&p, &mut scratch.v);
    let (ms, sums) = running_stats(&mut scratch.stats, n);
    let kt = &scratch.kt[..];
    let (v, ldv) = (&scratch.v[..], d);
    // The feature vectors of a row: full ones, then `tail` features (1..=L) in the last.
    let vecs = d.div_ceil(l);
    let tail = d - (vecs - 1) * l;
    let mut s = [[0.0f32; MAX_KT]; MR];
    for j0 in (0..n).step_by(kt_len) {
        let kn = kt_len.min(n - j0);
        let groups = kn.div_ceil(l);
        for i0 in (0..n).step_by(MR) {
            let mr = MR.min(n - i0);
            // Rows past the end repeat the last real one (computed, never stored), so that
            // every loop below runs MR rows from in-bounds reads.
            let qrow: [usize; MR] = std::array::from_fn(|i| (i0 + i.min(mr - 1)) * p.ldq);
            // SAFETY: the caller runs on S's ISA. Reads: q at `qrow[i] + c` for c < d (rows
            // < n), K^T groups below `n.div_ceil(L)` (packed above), V's copy at rows
            // `j0 + j < n` at features below d, `out` rows < n (through `row_mut`), the last
            // vector of a row partial through a stack buffer; writes: `s` below MAX_KT, `out`
            // rows < mr.
            unsafe {
                // Scores, two key vectors at a time, and the block's row maxima.
                let mut mx = [S::splat(f32::NEG_INFINITY); MR];
                let mut t = 0;
                while t < groups {
                    let two = t + 1 < groups;
                    let g = j0 / l + t;
                    let k0 = kt.as_ptr().add(g * d * l);
                    let k1 = if two { k0.add(d * l) } else { k0 };
                    let mut acc = [[S::splat(0.0); 2]; MR];
                    for c in 0..d {
                        let kv0 = S::load(k0.add(c * l));
                        let kv1 = S::load(k1.add(c * l));
                        for i in 0..MR {
                            let qv = S::splat(*p.q.get_unchecked(qrow[i] + c));
                            acc[i][0] = S::fma(qv, kv0, acc[i][0]);
                            acc[i][1] = S::fma(qv, kv1, acc[i][1]);
                        }
                    }
                    keep_scores::<S, MR>(&acc, two, t, kn, p.scale, &mut s, &mut mx);
                    t += 2;
                }
                let corr = online_softmax::<S, MR>(&mut s, &mx, ms, sums, i0, mr, groups, j0 == 0);
                // o = o * corr + P V for the tile, DV output vectors at a time: each V row's
                // vectors loaded once, into every row of the block.
                let last_tile = j0 + kn == n;
                for f0 in (0..vecs).step_by(DV) {
                    let fv = DV.min(vecs - f0);
                    // Whether vector u of this chunk is the row's partial last one.
                    let partial = |u: usize| f0 + u + 1 == vecs && tail < l;
                    let mut o =
                        load_out::<S, MR, DV>(&mut p.out, i0, mr, f0, fv, vecs, tail, j0, corr);
                    // Whole vectors only (the usual case: d a multiple of LANES, DV of them):
                    // the loop over keys with constant bounds, so that the block's output
                    // stays in registers. The same operations in the same order as below.
                    let whole = fv == DV && !(0..fv).any(partial);
                    if whole {
                        // A local copy: `o` itself is indexed at run-time bounds elsewhere,
                        // and LLVM then stored it back to the stack at every key.
                        let mut acc = o;
                        for j in 0..kn {
                            let vrow = v.as_ptr().add((j0 + j) * ldv + f0 * l);
                            let mut vv = [S::splat(0.0); DV];
                            for (u, x) in vv.iter_mut().enumerate() {
                                *x = S::load(vrow.add(u * l));
                            }
                            for (ai, si) in acc.iter_mut().zip(&s) {
                                let pv = S::splat(si[j]);
                                for (x, v) in ai.iter_mut().zip(&vv) {
                                    *x = S::fma(pv, *v, *x);
                                }
                            }
                        }
                        o = acc;
                    } else {
                        for j in 0..kn {
                            let vrow = v.as_ptr().add((j0 + j) * ldv);
                            let mut vv = [S::splat(0.0); DV];
                            for (u, x) in vv.iter_mut().enumerate().take(fv) {
                                let at = (f0 + u) * l;
                                *x = if partial(u) {
                                    let part = std::slice::from_raw_parts(vrow.add(at), tail);
                                    simd::load_partial::<S>(part, 0.0)
                                } else {
                                    S::load(vrow.add(at))
                                };
                            }
                            for (oi, si) in o.iter_mut().zip(&s) {
                                let pv = S::splat(si[j]);
                                for (x, v) in oi.iter_mut().zip(&vv).take(fv) {
                                    *x = S::fma(pv, *v, *x);
                                }
                            }
                        }
                    }
                    let sums = last_tile.then_some(&*sums);
                    store_out::<S, MR, DV>(&o, &mut p.out, i0, mr, f0, fv, vecs, tail, sums);
                }
            }
        }
    }
}

/// The rows' running maxima (-inf) and sums (0), `n` each, in `stats`.
fn running_stats(stats: &mut Vec<f32>, n: usize) -> (&mut [f32], &mut [f32]) {
    grow(stats, 2 * n, 0.0);
    let (ms, sums) = stats[..2 * n].split_at_mut(n);
    ms.fill(f32::NEG_INFINITY);
    sums.fill(0.0);
    (ms, sums)
}

/// Key vectors `t` (and `t + 1` if `two`) of a tile of `kn` keys: the block's dot products
/// `acc` times `scale`, keys past `kn` set to -inf, stored in `s` and folded into the maxima.
#[inline(always)]
unsafe fn keep_scores<S: Simd, const MR: usize>(
    acc: &[[S::F; 2]; MR],
    two: bool,
    t: usize,
    kn: usize,
    scale: f32,
    s: &mut [[f32; MAX_KT]; MR],
    mx: &mut [S::F; MR],
) {
    let l = S::LANES;
    // SAFETY: the caller runs on S's ISA and `(t + 2) * LANES <= MAX_KT` (a tile's keys).
    unsafe {
        let scale = S::splat(scale);
        for u in 0..if two { 2 } else { 1 } {
            let valid = kn - (t + u) * l;
            for ((ai, si), mxi) in acc.iter().zip(s.iter_mut()).zip(mx.iter_mut()) {
                let mut sv = S::mul(ai[u], scale);
                if valid < l {
                    sv = mask_tail::<S>(sv, valid);
                }
                S::store(si.as_mut_ptr().add((t + u) * l), sv);
                *mxi = S::max(*mxi, sv);
            }
        }
    }
}

/// The online-softmax step of query block `i0` (`mr` real rows) over a tile whose scores
/// (`groups` vectors per row) are in `s` with row maxima `mx`: the rows' new maxima and sums
/// (`ms`, `sums`, real rows only), the tile's exponentials in place of the scores, and each
/// row's factor `e^(m_old - m_new)` for the output so far. On the `first` tile there is no
/// output yet ([`load_out`] starts from zero) and the sums are 0, so the factors are not
/// computed: each sum becomes `0 * 1 + tile_sum`, the same bits as with any factor.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn online_softmax<S: Simd, const MR: usize>(
    s: &mut [[f32; MAX_KT]; MR],
    mx: &[S::F; MR],
    ms: &mut [f32],
    sums: &mut [f32],
    i0: usize,
    mr: usize,
    groups: usize,
    first: bool,
) -> [f32; MR] {
    let l = S::LANES;
    let mut corr = [1.0f32; MR];
    // SAFETY: the caller runs on S's ISA; `groups * LANES <= MAX_KT`; rows `i0 + i` for
    // i < mr are below n, the length of `ms` and `sums`; the vectors at `c < MR <= MAX_LANES`
    // read and write inside the buffers of 2 x MAX_LANES.
    unsafe {
        // The rows' new maxima; after the tile's exponentials (which do not wait for them),
        // their factors `e^(m_old - m_new)` a vector at a time (one exponential for a block of
        // at most LANES rows, lane by lane the same as one per row, and no chain of them in a
        // row). The buffers hold MR rows and a vector past them.
        const { assert!(MR <= MAX_LANES) };
        let mut m_new = [0.0f32; MR];
        let mut delta = [0.0f32; 2 * MAX_LANES];
        for i in 0..MR {
            let r = i0 + i.min(mr - 1);
            m_new[i] = ms[r].max(S::reduce_max(mx[i]));
            delta[i] = ms[r] - m_new[i];
        }
        // The exponentials a key vector of every row at a time: MR independent chains of the
        // exponential's dozen dependent operations (one row at a time left them to the
        // out-of-order window). Each row's sum still adds its vectors in key order.
        let mv: [S::F; MR] = std::array::from_fn(|i| S::splat(m_new[i]));
        let mut tile_sum = [S::splat(0.0); MR];
        for t in 0..groups {
            for i in 0..MR {
                let at = s[i].as_mut_ptr().add(t * l);
                let e = simd::exp::<S>(S::sub(S::load(at), mv[i]));
                S::store(at, e);
                tile_sum[i] = S::add(tile_sum[i], e);
            }
        }
        if !first {
            let mut factors = [0.0f32; 2 * MAX_LANES];
            for c in (0..MR).step_by(l) {
                let e = simd::exp::<S>(S::load(delta.as_ptr().add(c)));
                S::store(factors.as_mut_ptr().add(c), e);
            }
            corr.copy_from_slice(&factors[..MR]);
        }
        for i in 0..mr {
            let r = i0 + i;
            sums[r] = sums[r] * corr[i] + S::reduce_add(tile_sum[i]);
            ms[r] = m_new[i];
        }
    }
    corr
}

/// Output vectors `f0 .. f0 + fv` of query block `i0` (`mr` real rows) so far, times `corr`:
/// zero on the first tile (`j0 == 0`), else loaded from `out` (a row's last vector, of `tail`
/// features, through a partial load).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn load_out<S: Simd, const MR: usize, const DV: usize>(
    out: &mut MatMut<'_>,
    i0: usize,
    mr: usize,
    f0: usize,
    fv: usize,
    vecs: usize,
    tail: usize,
    j0: usize,
    corr: [f32; MR],
) -> [[S::F; DV]; MR] {
    let l = S::LANES;
    // SAFETY: the caller runs on S's ISA; rows below i0 + mr are rows of `out`, and vectors
    // below `vecs` lie within its d columns (the last one partial).
    unsafe {
        let mut o = [[S::splat(0.0); DV]; MR];
        if j0 == 0 {
            return o;
        }
        for (i, oi) in o.iter_mut().enumerate().take(mr) {
            let row = out.row_mut(i0 + i);
            let cv = S::splat(corr[i]);
            for (u, x) in oi.iter_mut().enumerate().take(fv) {
                let at = (f0 + u) * l;
                let cur = if f0 + u + 1 == vecs && tail < l {
                    simd::load_partial::<S>(&row[at..], 0.0)
                } else {
                    S::load(row.as_ptr().add(at))
                };
                *x = S::mul(cur, cv);
            }
        }
        o
    }
}

/// Stores [`load_out`]'s vectors back, unnormalised until the last tile (`sums` given), then
/// divided by the rows' sums.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn store_out<S: Simd, const MR: usize, const DV: usize>(
    o: &[[S::F; DV]; MR],
    out: &mut MatMut<'_>,
    i0: usize,
    mr: usize,
    f0: usize,
    fv: usize,
    vecs: usize,
    tail: usize,
    sums: Option<&[f32]>,
) {
    let l = S::LANES;
    // SAFETY: as in `load_out`.
    unsafe {
        for (i, oi) in o.iter().enumerate().take(mr) {
            let f = S::splat(sums.map_or(1.0, |s| 1.0 / s[i0 + i]));
            let row = out.row_mut(i0 + i);
            for (u, x) in oi.iter().enumerate().take(fv) {
                let at = (f0 + u) * l;
                let y = S::mul(*x, f);
                if f0 + u + 1 == vecs && tail < l {
                    simd::store_partial::<S>(&mut row[at..], y);
                } else {
                    S::store(row.as_mut_ptr().add(at), y);
                }
            }
        }
    }
}

/// The fused kernel with bf16 operands: Q, K and V rounded to bfloat16 as they are packed in
/// pairs, the scores as dot products of feature pairs (`vdpbf16ps` on AVX-512 BF16, the same
/// operations widened elsewhere: [`DotBf16`]), the online softmax in f32 as in [`attention`],
/// and `P V` as dot products of key pairs, the weights rounded to bfloat16. Half the
/// multiply-add instructions of the f32 kernel; the same tiles and blocks.
///
/// Pairs: features `c` and `c + ceil(d / 2)` (so that a row's pairs come from two contiguous
/// halves of it), and in each run of `2 LANES` keys, keys `lane` and `LANES + lane` (so that
/// a row's weights pair two score vectors lane by lane); both are rounded and interleaved by
/// [`Simd::store_bf16_pairs`]. The packed `K^T` (16-key rows of feature pairs) and V (16-feature
/// rows of key pairs, 64 bytes each) are also the operands AMX tiles load.
#[inline(always)]
pub(crate) unsafe fn attention_bf16<D: DotBf16>(
    p: AttentionHead<'_>,
    scratch: &mut AttentionScratch,
) {
    p.check();
    // SAFETY: the caller runs on D's ISA (the contract of every body below).
    unsafe {
        match p.d.div_ceil(D::S::LANES) {
            0 => {}
            // Widened on AVX-512: 8 rows, at most 2 output vectors at a time, as in f32 (the
            // widened pairs of two key or feature vectors take 4 registers beside the 16
            // accumulators).
            1 if D::S::LANES >= 16 && D::A_WORDS == 2 => {
                attention_bf16_dv::<D, ROWS_WIDE, 1>(p, scratch)
            }
            _ if D::S::LANES >= 16 && D::A_WORDS == 2 => {
                attention_bf16_dv::<D, ROWS_WIDE, 2>(p, scratch)
            }
            // AVX2: 6 rows, at most 2 output vectors at a time, as in f32.
            1 if D::S::LANES == 8 => attention_bf16_dv::<D, ROWS_AVX2, 1>(p, scratch),
            _ if D::S::LANES == 8 => attention_bf16_dv::<D, ROWS_AVX2, 2>(p, scratch),
            1 => attention_bf16_dv::<D, ROWS, 1>(p, scratch),
            2 => attention_bf16_dv::<D, ROWS, 2>(p, scratch),
            3 => attention_bf16_dv::<D, ROWS, 3>(p, scratch),
            4 => attention_bf16_dv::<D, ROWS, 4>(p, scratch),
            _ => attention_bf16_dv::<D, ROWS, 8>(p, scratch),
        }
    }
}

/// `v` grown (with zeros) to at least `len`; its first `len` entries.
fn grown(v: &mut Vec<u32>, len: usize) -> &mut [u32] {
    grow(v, len, 0);
    &mut v[..len]
}

/// `out` (a whole number of vectors) = the bf16 pairs of `first` and `second` lane by lane,
/// each read as zero past its end.
#[inline(always)]
unsafe fn pairs_into<S: Simd>(first: &[f32], second: &[f32], out: &mut [u32]) {
    let l = S::LANES;
    // SAFETY: the caller runs on S's ISA; `out` holds whole vectors, each stored in full;
    // whole source vectors are loaded in place, partial ones through `load_partial`.
    unsafe {
        for (v, chunk) in out.chunks_exact_mut(l).enumerate() {
            let at = v * l;
            let a = if at + l <= first.len() {
                S::load(first.as_ptr().add(at))
            } else {
                simd::load_partial::<S>(first.get(at..).unwrap_or(&[]), 0.0)
            };
            let b = if at + l <= second.len() {
                S::load(second.as_ptr().add(at))
            } else {
                simd::load_partial::<S>(second.get(at..).unwrap_or(&[]), 0.0)
            };
            S::store_bf16_pairs(chunk.as_mut_ptr(), a, b);
        }
    }
}

/// The bf16 operands, packed into `scratch` for lane count `l`, with `dp = ceil(d / 2)`
/// feature pairs (rows of `dpv`, `dp` rounded up to whole vectors) and `vecs = ceil(d / l)`
/// feature vectors, zero past n keys and d features:
/// - Q: row `i` at `i * dpv`, pair `c2` = features `(c2, c2 + dp)`; `q_rows` (at least n)
///   rows, those past n zero;
/// - `K^T`: groups of `l` keys, for each feature pair the `l` keys' pairs, at
///   `(g * dp + c2) * l + lane`;
/// - V: pair `jp` (keys `2 l (jp / l) + jp % l` and that plus `l`), feature vector `u`: the
///   `l` features' key pairs, at `(jp * vecs + u) * l + lane`.
#[inline(always)]
unsafe fn pack_bf16_operands<'s, S: Simd>(
    p: &AttentionHead<'_>,
    scratch: &'s mut AttentionScratch,
    q_rows: usize,
) -> (&'s [u32], &'s [u32], &'s [u32]) {
    let l = S::LANES;
    let (n, d) = (p.n, p.d);
    let (dp, vecs) = (d.div_ceil(2), d.div_ceil(l));
    let dpv = dp.div_ceil(l) * l;
    // SAFETY: the caller runs on S's ISA; every row read is below n, at columns below d.
    unsafe {
        debug_assert!(q_rows >= n);
        let q = grown(&mut scratch.q_pairs, q_rows * dpv);
        for (i, out) in q.chunks_exact_mut(dpv).enumerate() {
            if i < n {
                let row = &p.q[i * p.ldq..i * p.ldq + d];
                pairs_into::<S>(&row[..dp], &row[dp..], out);
            } else {
                out.fill(0);
            }
        }
        // K's rows as pairs first (vector work), then transposed into groups of keys.
        let rows = grown(&mut scratch.kt_rows, n * dpv);
        for (j, out) in rows.chunks_exact_mut(dpv).enumerate() {
            let row = &p.k[j * p.ldk..j * p.ldk + d];
            pairs_into::<S>(&row[..dp], &row[dp..], out);
        }
        let kt = grown(&mut scratch.kt_pairs, n.div_ceil(l) * dp * l);
        transpose_groups::<S>(rows.as_ptr(), dpv, n, dp, kt.as_mut_ptr());
        let v = grown(&mut scratch.v_pairs, n.div_ceil(2 * l) * l * vecs * l);
        for (jp, out) in v.chunks_exact_mut(vecs * l).enumerate() {
            let ja = 2 * l * (jp / l) + jp % l;
            let row = |j: usize| {
                if j < n {
                    &p.v[j * p.ldv..j * p.ldv + d]
                } else {
                    &[][..]
                }
            };
            pairs_into::<S>(row(ja), row(ja + l), out);
        }
        (q, kt, v)
    }
}

/// [`attention_dv`] on bf16 pairs (see [`attention_bf16`]).
#[inline(always)]
unsafe fn attention_bf16_dv<D: DotBf16, const MR: usize, const DV: usize>(
    mut p: AttentionHead<'_>,
    scratch: &mut AttentionScratch,
) {
    let (n, d) = (p.n, p.d);
    if n == 0 {
        return;
    }
    let l = D::S::LANES;
    // A whole number of key-vector pairs: every tile starts at a run of 2 l keys.
    let kt_len = tile_keys(d, l);
    let (dp, vecs) = (d.div_ceil(2), d.div_ceil(l));
    let dpv = dp.div_ceil(l) * l;
    let tail = d - (vecs - 1) * l;
    let mut stats = std::mem::take(&mut scratch.stats);
    let mut q_wide = std::mem::take(&mut scratch.q_wide);
    // SAFETY: the caller runs on D's ISA, which includes D::S's.
    let (q, kt, v) = unsafe { pack_bf16_operands::<D::S>(&p, scratch, n) };
    // Where the pairs are widened (`A_WORDS` 2), the operands broadcast per row (Q's pairs
    // and the weights) are held as their two values, so that each broadcast is a load, not
    // two shuffles and scalar work: Q rows of `2 dpv` f32 (the first values, then the second),
    // and the weights rounded in place in `s`, where a run's pairs are `l` apart.
    let wide = D::A_WORDS == 2;
    if wide {
        grow(&mut q_wide, n * 2 * dpv, 0.0);
        for (row, out) in q
            .chunks_exact(dpv)
            .zip(q_wide.chunks_exact_mut(2 * dpv))
            .take(n)
        {
            let (first, second) = out.split_at_mut(dpv);
            for c in (0..dpv).step_by(l) {
                // SAFETY: the caller runs on D::S's ISA; `c + l <= dpv`, the rows' length.
                unsafe {
                    let (b, a) = D::S::load_bf16_pairs(row.as_ptr().add(c));
                    D::S::store(first.as_mut_ptr().add(c), a);
                    D::S::store(second.as_mut_ptr().add(c), b);
                }
            }
        }
    }
    let qw = &q_wide[..];
    let (ms, sums) = running_stats(&mut stats, n);
    let mut s = [[0.0f32; MAX_KT]; MR];
    // The tile's weights as bfloat16 pairs (keys `lane` and `l + lane` of each run of 2 l).
    let mut w = [[0u32; MAX_KT / 2]; MR];
    for j0 in (0..n).step_by(kt_len) {
        let kn = kt_len.min(n - j0);
        let groups = kn.div_ceil(l);
        let runs = groups.div_ceil(2);
        let key_pairs = runs * l;
        for i0 in (0..n).step_by(MR) {
            let mr = MR.min(n - i0);
            let qrow: [usize; MR] = std::array::from_fn(|i| (i0 + i.min(mr - 1)) * dpv);
            // SAFETY: the caller runs on D's ISA. Reads: `q` at `qrow[i] + c2` (rows < n,
            // c2 < dp), or `qw` at `2 qrow[i] + c2` and that plus `dpv` (widened above),
            // `kt` groups below `n.div_ceil(l)`, `v` pairs below `n.div_ceil(2 l) * l` at
            // vectors below `vecs` (all packed above, padded with zeros), `out` rows < n;
            // writes: `s` and `w` within a tile (MAX_KT and MAX_KT / 2; an odd number of
            // groups is at most TILE_VECS - 1, so the vector past them fits), `out` rows < mr.
            unsafe {
                let mut mx = [D::S::splat(f32::NEG_INFINITY); MR];
                let mut t = 0;
                while t < groups {
                    let two = t + 1 < groups;
                    let g = j0 / l + t;
                    let k0 = kt.as_ptr().add(g * dp * l);
                    let k1 = if two { k0.add(dp * l) } else { k0 };
                    let mut acc = [[D::S::splat(0.0); 2]; MR];
                    for c2 in 0..dp {
                        let kv0 = D::load_w(k0.add(c2 * l));
                        let kv1 = D::load_w(k1.add(c2 * l));
                        for i in 0..MR {
                            let qa = if wide {
                                let r = qw.as_ptr().add(2 * qrow[i]);
                                D::bcast_values(*r.add(c2), *r.add(dpv + c2))
                            } else {
                                D::bcast(*q.get_unchecked(qrow[i] + c2))
                            };
                            acc[i][0] = D::dot(acc[i][0], qa, kv0);
                            acc[i][1] = D::dot(acc[i][1], qa, kv1);
                        }
                    }
                    keep_scores::<D::S, MR>(&acc, two, t, kn, p.scale, &mut s, &mut mx);
                    t += 2;
                }
                let corr =
                    online_softmax::<D::S, MR>(&mut s, &mx, ms, sums, i0, mr, groups, j0 == 0);
                // The weights in pairs; keys past kn weigh exactly 0 (masked to -inf above),
                // and so does a run's missing second vector. Widened: each weight rounded in
                // place, as the high half of a pair whose low half is 0.
                if wide {
                    for si in s.iter_mut() {
                        for t in 0..groups {
                            let at = si.as_mut_ptr().add(t * l);
                            let x = D::S::load(at);
                            D::S::store_bf16_pairs(at.cast(), D::S::splat(0.0), x);
                        }
                        if groups % 2 == 1 {
                            D::S::store(si.as_mut_ptr().add(groups * l), D::S::splat(0.0));
                        }
                    }
                } else {
                    for (wi, si) in w.iter_mut().zip(&s) {
                        for r in 0..runs {
                            let first = D::S::load(si.as_ptr().add(2 * r * l));
                            let second = if 2 * r + 1 < groups {
                                D::S::load(si.as_ptr().add((2 * r + 1) * l))
                            } else {
                                D::S::splat(0.0)
                            };
                            D::S::store_bf16_pairs(wi.as_mut_ptr().add(r * l), first, second);
                        }
                    }
                }
                let last_tile = j0 + kn == n;
                let v0 = v.as_ptr().add(j0 / 2 * vecs * l);
                for f0 in (0..vecs).step_by(DV) {
                    let fv = DV.min(vecs - f0);
                    let mut o =
                        load_out::<D::S, MR, DV>(&mut p.out, i0, mr, f0, fv, vecs, tail, j0, corr);
                    if fv == DV {
                        // Constant bounds, so that the output stays in registers (as in
                        // `attention_dv`); the same operations as below.
                        let mut acc = o;
                        for jp in 0..key_pairs {
                            let vr = v0.add((jp * vecs + f0) * l);
                            let mut vv = [D::load_w(vr); DV];
                            for (u, x) in vv.iter_mut().enumerate().skip(1) {
                                *x = D::load_w(vr.add(u * l));
                            }
                            for (ai, (wi, si)) in acc.iter_mut().zip(w.iter().zip(&s)) {
                                let wa = weight::<D>(wide, wi, si, jp);
                                for (x, vu) in ai.iter_mut().zip(&vv) {
                                    *x = D::dot(*x, wa, *vu);
                                }
                            }
                        }
                        o = acc;
                    } else {
                        for jp in 0..key_pairs {
                            let vr = v0.add((jp * vecs + f0) * l);
                            let mut vv = [D::load_w(vr); DV];
                            for (u, x) in vv.iter_mut().enumerate().take(fv).skip(1) {
                                *x = D::load_w(vr.add(u * l));
                            }
                            for (oi, (wi, si)) in o.iter_mut().zip(w.iter().zip(&s)) {
                                let wa = weight::<D>(wide, wi, si, jp);
                                for (x, vu) in oi.iter_mut().zip(&vv).take(fv) {
                                    *x = D::dot(*x, wa, *vu);
                                }
                            }
                        }
                    }
                    let sums = last_tile.then_some(&*sums);
                    store_out::<D::S, MR, DV>(&o, &mut p.out, i0, mr, f0, fv, vecs, tail, sums);
                }
            }
        }
    }
    scratch.stats = stats;
    scratch.q_wide = q_wide;
}

/// Weight pair `jp` of a block row (keys `2 l (jp / l) + jp % l` and that plus `l`), broadcast:
/// from the row's rounded weights `s` where the pairs are widened (`wide`), else from its
/// pairs `w`. Safety: `jp` below the tile's key pairs; the caller runs on D's ISA.
#[inline(always)]
unsafe fn weight<D: DotBf16>(wide: bool, w: &[u32], s: &[f32], jp: usize) -> D::A {
    let l = D::S::LANES;
    // SAFETY: the contract above; a tile's pairs index `w` below MAX_KT / 2 and `s` below
    // MAX_KT.
    unsafe {
        if wide {
            let at = 2 * l * (jp / l) + jp % l;
            D::bcast_values(*s.get_unchecked(at), *s.get_unchecked(at + l))
        } else {
            D::bcast(*w.get_unchecked(jp))
        }
    }
}

/// Lanes `valid..` of `v` set to -inf.
#[inline(always)]
unsafe fn mask_tail<S: Simd>(v: S::F, valid: usize) -> S::F {
    let mut buf = [0.0f32; MAX_LANES];
    // SAFETY: the buffer holds MAX_LANES >= LANES floats; the caller runs on S's ISA.
    unsafe {
        S::store(buf.as_mut_ptr(), v);
        for x in &mut buf[valid..S::LANES] {
            *x = f32::NEG_INFINITY;
        }
        S::load(buf.as_ptr())
    }
}
