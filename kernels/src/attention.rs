//! Fused attention for one (sequence, head): `softmax(scale Q K^T) V`, FlashAttention-style.
//!
//! Keys and values go in tiles (as many keys as keep the tile's `K^T` and V rows within about
//! 64 KiB, in pairs of vectors, at most `TILE_VECS * LANES`: 128 keys on AVX-512 at head sizes
//! 32 and 64); queries in blocks of `MR` rows, which all pass over a tile while it is cached. For each
//! (tile, block) the block's scores (`MR x tile`, on the stack: never more of the score
//! matrix) come from `K^T` packed in vector-wide key groups, the rows' running maxima and sums
//! take the online-softmax update (the block's output, in registers, is rescaled by
//! `e^(m_old - m_new)` when a maximum rises), and `P V` for the tile is added. Between tiles a
//! block's unnormalised output waits in `out`; the last tile divides it by the sums.
//!
//! There is no mask: the engine runs padding-free (each sequence holds only its real tokens), so
//! every key takes part; keys past the sequence's end inside the last tile are set to -inf
//! before the exponential, which makes their probability exactly 0.

use crate::gemm::MatMut;
use crate::simd::{self, Simd, MAX_LANES};

/// Query rows per block.
const MR: usize = 4;
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

/// Reused buffers: packed `K^T`, the rows' running maxima and sums, and the reference twin's
/// score row.
#[derive(Clone, Debug, Default)]
pub struct AttentionScratch {
    kt: Vec<f32>,
    stats: Vec<f32>,
    row: Vec<f64>,
}

/// The reference twin: scores, softmax and the weighted sum in f64, exactly as written (its
/// score row lives in the scratch: the scalar path allocates nothing once it has grown).
pub fn attention_ref(mut p: AttentionHead<'_>, scratch: &mut AttentionScratch) {
    p.check();
    let (n, d) = (p.n, p.d);
    if scratch.row.len() < n {
        scratch.row.resize(n, 0.0);
    }
    let s = &mut scratch.row[..n];
    for i in 0..n {
        for (j, sj) in s.iter_mut().enumerate() {
            let dot: f64 = (0..d)
                .map(|c| f64::from(p.q[i * p.ldq + c]) * f64::from(p.k[j * p.ldk + c]))
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
            let o: f64 = (0..n).map(|j| s[j] * f64::from(p.v[j * p.ldv + c])).sum();
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
            1 => attention_dv::<S, 1>(p, scratch),
            2 => attention_dv::<S, 2>(p, scratch),
            3 => attention_dv::<S, 3>(p, scratch),
            4 => attention_dv::<S, 4>(p, scratch),
            // Wider heads go 8 vectors of output features at a time.
            _ => attention_dv::<S, 8>(p, scratch),
        }
    }
}

/// Packs `K^T` into `kt` in groups of LANES keys: group g holds, for each feature c, keys
/// `g*L .. g*L + L` (zero past n).
fn pack_kt(p: &AttentionHead<'_>, l: usize, kt: &mut Vec<f32>) {
    let (n, d) = (p.n, p.d);
    let groups = n.div_ceil(l);
    if kt.len() < groups * d * l {
        kt.resize(groups * d * l, 0.0);
    }
    for g in 0..groups {
        let keys = l.min(n - g * l);
        for c in 0..d {
            let dst = &mut kt[(g * d + c) * l..][..l];
            for (lane, slot) in dst[..keys].iter_mut().enumerate() {
                *slot = p.k[(g * l + lane) * p.ldk + c];
            }
            dst[keys..].fill(0.0);
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
unsafe fn attention_dv<S: Simd, const DV: usize>(
    mut p: AttentionHead<'_>,
    scratch: &mut AttentionScratch,
) {
    let (n, d) = (p.n, p.d);
    if n == 0 {
        return;
    }
    let l = S::LANES;
    let kt_len = tile_keys(d, l);
    pack_kt(&p, l, &mut scratch.kt);
    if scratch.stats.len() < 2 * n {
        scratch.stats.resize(2 * n, 0.0);
    }
    let (ms, sums) = scratch.stats[..2 * n].split_at_mut(n);
    ms.fill(f32::NEG_INFINITY);
    sums.fill(0.0);
    let kt = &scratch.kt[..];
    // The feature vectors of a row: full ones, then `tail` features (1..=L) in the last.
    let vecs = d.div_ceil(l);
    let tail = d - (vecs - 1) * l;
    let mut s = [[0.0f32; MAX_KT]; MR];
    for j0 in (0..n).step_by(kt_len) {
        let kn = kt_len.min(n - j0);
        let groups = kn.div_ceil(l);
        let first_tile = j0 == 0;
        for i0 in (0..n).step_by(MR) {
            let mr = MR.min(n - i0);
            // Rows past the end repeat the last real one (computed, never stored), so that
            // every loop below runs MR rows from in-bounds reads.
            let row_of = |i: usize| i0 + i.min(mr - 1);
            let qrow: [usize; MR] = std::array::from_fn(|i| row_of(i) * p.ldq);
            // SAFETY: the caller runs on S's ISA. Reads: q at `qrow[i] + c` for c < d (rows
            // < n), K^T groups below `n.div_ceil(L)` (packed above), V rows `j0 + j < n` at
            // features below d, `out` rows < n (through `row_mut`), the last vector of a row
            // partial through a stack buffer; writes: `s` below MAX_KT, `out` rows < mr.
            unsafe {
                let scale = S::splat(p.scale);
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
                    t += 2;
                }
                // Online softmax: new maxima, the output's rescaling, the tile's exponentials.
                let mut corr = [1.0f32; MR];
                for i in 0..MR {
                    let r = row_of(i);
                    let m_new = ms[r].max(S::reduce_max(mx[i]));
                    corr[i] = first_lane::<S>(simd::exp::<S>(S::splat(ms[r] - m_new)));
                    let mv = S::splat(m_new);
                    let mut tile_sum = S::splat(0.0);
                    for t in 0..groups {
                        let e = simd::exp::<S>(S::sub(S::load(s[i].as_ptr().add(t * l)), mv));
                        S::store(s[i].as_mut_ptr().add(t * l), e);
                        tile_sum = S::add(tile_sum, e);
                    }
                    if i < mr {
                        sums[r] = sums[r] * corr[i] + S::reduce_add(tile_sum);
                        ms[r] = m_new;
                    }
                }
                // o = o * corr + P V for the tile, DV output vectors at a time: each V row's
                // vectors loaded once, into every row of the block.
                let last_tile = j0 + kn == n;
                for f0 in (0..vecs).step_by(DV) {
                    let fv = DV.min(vecs - f0);
                    // Whether vector u of this chunk is the row's partial last one.
                    let partial = |u: usize| f0 + u + 1 == vecs && tail < l;
                    let mut o = [[S::splat(0.0); DV]; MR];
                    if !first_tile {
                        for (i, oi) in o.iter_mut().enumerate().take(mr) {
                            let row = p.out.row_mut(i0 + i);
                            let cv = S::splat(corr[i]);
                            for (u, x) in oi.iter_mut().enumerate().take(fv) {
                                let at = (f0 + u) * l;
                                let cur = if partial(u) {
                                    simd::load_partial::<S>(&row[at..], 0.0)
                                } else {
                                    S::load(row.as_ptr().add(at))
                                };
                                *x = S::mul(cur, cv);
                            }
                        }
                    }
                    // Whole vectors only (the usual case: d a multiple of LANES, DV of them):
                    // the loop over keys with constant bounds, so that the block's output
                    // stays in registers. The same operations in the same order as below.
                    let whole = fv == DV && !(0..fv).any(partial);
                    if whole {
                        // A local copy: `o` itself is indexed at run-time bounds elsewhere,
                        // and LLVM then stored it back to the stack at every key.
                        let mut acc = o;
                        for j in 0..kn {
                            let vrow = p.v.as_ptr().add((j0 + j) * p.ldv + f0 * l);
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
                            let vrow = p.v.as_ptr().add((j0 + j) * p.ldv);
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
                    // Unnormalised until the last tile, then divided by the sums.
                    for (i, oi) in o.iter().enumerate().take(mr) {
                        let f = S::splat(if last_tile { 1.0 / sums[i0 + i] } else { 1.0 });
                        let row = p.out.row_mut(i0 + i);
                        for (u, x) in oi.iter().enumerate().take(fv) {
                            let at = (f0 + u) * l;
                            let y = S::mul(*x, f);
                            if partial(u) {
                                simd::store_partial::<S>(&mut row[at..], y);
                            } else {
                                S::store(row.as_mut_ptr().add(at), y);
                            }
                        }
                    }
                }
            }
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

/// Lane 0 of `v`.
#[inline(always)]
unsafe fn first_lane<S: Simd>(v: S::F) -> f32 {
    let mut buf = [0.0f32; MAX_LANES];
    // SAFETY: the buffer holds MAX_LANES >= LANES floats; the caller runs on S's ISA.
    unsafe { S::store(buf.as_mut_ptr(), v) };
    buf[0]
}
