//! The MR x NR microkernel, generic over the SIMD vocabulary: NV vectors of weights per k,
//! MR broadcasts of A, MR * NV fused multiply-adds into register accumulators.
//!
//! Contract: `a` points at a packed A micro-panel (`kc` steps of MR values); `w` at the first
//! of `kc` weight rows spaced [`super::PANEL`] apart, of which NR = NV * LANES values are read;
//! `c` at element `(row, col)` of C with row stride `ldc`, of which only the `mr x nc` valid
//! elements are read or written (a partial tile goes through a stack tile). On the first K
//! block the tile is written, later blocks add to it; on the last, the bias and the epilogue
//! are applied before the store.

use super::{Epilogue, PANEL};
use crate::simd::{self, Simd};

pub(super) struct Tile<'a> {
    pub kc: usize,
    pub a: *const f32,
    pub w: *const f32,
    pub first: bool,
    pub last: bool,
    pub c: *mut f32,
    pub ldc: usize,
    pub mr: usize,
    pub nc: usize,
    /// The bias from this tile's first column (at least `nc` values).
    pub bias: Option<&'a [f32]>,
    /// The epilogue; a residual slice starts at this tile's `(row, col)`.
    pub epilogue: Epilogue<'a>,
}

/// Most elements of a tile on any ISA (8 x 32 on AVX-512); `run` asserts its tile fits.
const MAX_TILE: usize = 8 * 32;

/// `nc`-clipped range of vector `j`'s columns.
#[inline(always)]
fn cols(j: usize, lanes: usize, nc: usize) -> std::ops::Range<usize> {
    (j * lanes).min(nc)..((j + 1) * lanes).min(nc)
}

#[inline(always)]
pub(super) unsafe fn run<S: Simd, const MR: usize, const NV: usize>(t: &Tile<'_>) {
    let l = S::LANES;
    let nr = NV * l;
    debug_assert!(MR * nr <= MAX_TILE);
    // SAFETY: the contract above: `a` is valid for kc * MR reads, `w` for kc rows of nr reads
    // spaced PANEL apart, `c` for the mr x nc elements at stride ldc (the driver derived it
    // from `&mut` C and bounded it with `GemmF32::check`); the caller runs on S's ISA.
    unsafe {
        let mut acc = [[S::splat(0.0); NV]; MR];
        let (mut a, mut w) = (t.a, t.w);
        for _ in 0..t.kc {
            let mut wv = [S::splat(0.0); NV];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = S::load(w.add(j * l));
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let ai = S::splat(*a.add(i));
                for (j, acc_ij) in acc_i.iter_mut().enumerate() {
                    *acc_ij = S::fma(ai, wv[j], *acc_ij);
                }
            }
            a = a.add(MR);
            w = w.add(PANEL);
        }
        let full = t.mr == MR && t.nc == nr;
        let mut tmp = [0.0f32; MAX_TILE];
        let (c, ldc) = if full {
            (t.c, t.ldc)
        } else {
            if !t.first {
                for i in 0..t.mr {
                    std::ptr::copy_nonoverlapping(
                        t.c.add(i * t.ldc),
                        tmp.as_mut_ptr().add(i * nr),
                        t.nc,
                    );
                }
            }
            (tmp.as_mut_ptr(), nr)
        };
        let mut bias = [S::splat(0.0); NV];
        if t.last {
            if let Some(b) = t.bias {
                for (j, bv) in bias.iter_mut().enumerate() {
                    *bv = simd::load_partial::<S>(&b[cols(j, l, t.nc)], 0.0);
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (j, &acc_ij) in acc_i.iter().enumerate() {
                let cp = c.add(i * ldc + j * l);
                let mut v = acc_ij;
                if !t.first {
                    v = S::add(v, S::load(cp));
                }
                if t.last {
                    v = S::add(v, bias[j]);
                    match t.epilogue {
                        Epilogue::None => {}
                        Epilogue::Gelu => {
                            let x = S::mul(v, S::splat(std::f32::consts::FRAC_1_SQRT_2));
                            let e = simd::erf::<S>(x);
                            v = S::mul(S::mul(S::splat(0.5), v), S::add(S::splat(1.0), e));
                        }
                        Epilogue::Residual { r, ld } => {
                            if i < t.mr {
                                let rs = &r[i * ld..][cols(j, l, t.nc)];
                                v = S::add(v, simd::load_partial::<S>(rs, 0.0));
                            }
                        }
                    }
                }
                S::store(cp, v);
            }
        }
        if !full {
            for i in 0..t.mr {
                std::ptr::copy_nonoverlapping(tmp.as_ptr().add(i * nr), t.c.add(i * t.ldc), t.nc);
            }
        }
    }
}
