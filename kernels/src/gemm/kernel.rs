//! The MR x NR microkernels, generic over the SIMD vocabulary: NV vectors of weights per k,
//! MR broadcasts of A, MR * NV multiply-adds into register accumulators, then one shared store
//! that applies the bias and the epilogue.
//!
//! Float contract ([`run`]): `a` points at a packed A micro-panel (`kc` steps of MR values);
//! `w` at the first of `kc` weight rows spaced [`super::PANEL`] apart, of which NR = NV * LANES
//! values are read (f32, or f16 widened in registers). int8 contract ([`run_i8`], over the
//! groups of 4 k that its [`KRange`] names): `a` points at K's first group of MR x 4
//! activation bytes; `w` at the first of K's weight groups, spaced `4 * PANEL` bytes apart, of
//! which `4 * NR` are read (both valid to the range's last group); `col_sum` and `w_scale` hold NR
//! values. Both: `c` points at element `(row, col)` of C with row stride `ldc`, of which only
//! the `mr x nc` valid elements are read or written (a partial tile goes through a stack tile).
//! On the first K block the tile is written, later blocks add to it; on the last, the bias and
//! the epilogue are applied before the store.

use super::{Epilogue, Weights, PANEL};
use crate::simd::{self, DotBf16, DotI8, Simd};

/// Where and how a tile's results are stored.
pub(super) struct Out<'a> {
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

/// A weight element type of the float GEMM: how LANES of them become an f32 vector.
pub(crate) trait Elem: Copy {
    /// Whether the driver has the first micro-panel of a block widen these weights to f32
    /// for the others (see [`run`]'s `SPILL`).
    const WIDEN: bool;
    unsafe fn load<S: Simd>(p: *const Self) -> S::F;
    /// The packed weights, if they are of this type.
    fn slice<'a>(w: &Weights<'a>) -> Option<&'a [Self]>;
}

impl Elem for f32 {
    const WIDEN: bool = false;
    fn slice<'a>(w: &Weights<'a>) -> Option<&'a [f32]> {
        match *w {
            Weights::F32(w) => Some(w),
            _ => None,
        }
    }
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const f32) -> S::F {
        // SAFETY: `p` is valid for LANES reads (the microkernel's contract).
        unsafe { S::load(p) }
    }
}

impl Elem for half::f16 {
    const WIDEN: bool = true;
    fn slice<'a>(w: &Weights<'a>) -> Option<&'a [half::f16]> {
        match *w {
            Weights::F16(w) => Some(w),
            _ => None,
        }
    }
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const half::f16) -> S::F {
        // SAFETY: as above; `f16` is a transparent 16-bit IEEE half.
        unsafe { S::load_f16(p.cast()) }
    }
}

/// Most elements of a tile on any ISA (8 x 32 on AVX-512); the kernels assert their tile fits.
const MAX_TILE: usize = 8 * 32;

/// `nc`-clipped range of vector `j`'s columns.
#[inline(always)]
fn cols(j: usize, lanes: usize, nc: usize) -> std::ops::Range<usize> {
    (j * lanes).min(nc)..((j + 1) * lanes).min(nc)
}

/// `src` (at most LANES values) as a vector, zero-padded: a plain load when it is a whole
/// vector (no copy through the stack, which the epilogue would otherwise pay per tile).
#[inline(always)]
unsafe fn load_cols<S: Simd>(src: &[f32]) -> S::F {
    // SAFETY: a whole vector is LANES valid values; else the padded helper; the caller runs on
    // S's ISA.
    unsafe {
        if src.len() == S::LANES {
            S::load(src.as_ptr())
        } else {
            simd::load_partial::<S>(src, 0.0)
        }
    }
}

/// The float microkernel: `kc` steps of `a` (MR values) times `w` (NR weights of type `E`).
/// With `SPILL`, the weights as widened to f32 are also stored to `spill` (kc rows of NR,
/// spaced PANEL apart), for the block's other micro-panels to read: the widening then overlaps
/// this micro-panel's arithmetic instead of costing a pass of its own.
#[inline(always)]
pub(super) unsafe fn run<S: Simd, E: Elem, const MR: usize, const NV: usize, const SPILL: bool>(
    kc: usize,
    a: *const f32,
    w: *const E,
    spill: *mut f32,
    out: &Out<'_>,
) {
    let l = S::LANES;
    debug_assert!(MR * NV * l <= MAX_TILE);
    // SAFETY: the contract above: `a` is valid for kc * MR reads, `w` for kc rows of NR reads
    // spaced PANEL apart, and with SPILL `spill` for as many writes; the caller runs on S's ISA.
    unsafe {
        let mut acc = [[S::splat(0.0); NV]; MR];
        let (mut a, mut w, mut spill) = (a, w, spill);
        for _ in 0..kc {
            let mut wv = [S::splat(0.0); NV];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = E::load::<S>(w.add(j * l));
                if SPILL {
                    S::store(spill.add(j * l), *v);
                }
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let ai = S::splat(*a.add(i));
                for (j, acc_ij) in acc_i.iter_mut().enumerate() {
                    *acc_ij = S::fma(ai, wv[j], *acc_ij);
                }
            }
            a = a.add(MR);
            w = w.add(PANEL);
            if SPILL {
                spill = spill.add(PANEL);
            }
        }
        store::<S, MR, NV>(&acc, out);
    }
}

/// Adds `steps` groups of 4 along K of `a` (MR x 4 bytes each) times `w` (NV vectors of
/// weights, groups `4 * PANEL` bytes apart) into `acc`: the int8 microkernels' inner loop.
#[inline(always)]
unsafe fn dot_steps<D: DotI8, const MR: usize, const NV: usize>(
    steps: usize,
    a: *const u8,
    w: *const i8,
    acc: &mut [[D::I; NV]; MR],
) {
    let l = D::S::LANES;
    // SAFETY: `a` is valid for steps x MR x 4 reads and `w` for steps groups of 4 x NR bytes
    // spaced 4 x PANEL apart (the callers' int8 contract); the caller runs on D's ISA.
    unsafe {
        let (mut a, mut w) = (a, w);
        for _ in 0..steps {
            let mut wv = [D::load_w(w); NV];
            for (j, v) in wv.iter_mut().enumerate().skip(1) {
                *v = D::load_w(w.add(j * l * 4));
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let ai = D::bcast(a.add(i * 4));
                for (j, acc_ij) in acc_i.iter_mut().enumerate() {
                    *acc_ij = D::dot(*acc_ij, ai, wv[j]);
                }
            }
            a = a.add(MR * 4);
            w = w.add(PANEL * 4);
        }
    }
}

/// [`dot_steps`] with the even steps summed into `acc` and the odd ones into a second set of
/// accumulators, added into `acc` at the end (twice the independent chains, the same sums).
#[inline(always)]
unsafe fn dot_steps_split<D: DotI8, const MR: usize, const NV: usize>(
    steps: usize,
    a: *const u8,
    w: *const i8,
    acc: &mut [[D::I; NV]; MR],
) {
    // SAFETY: as `dot_steps` (the same `steps` groups, read two at a time).
    unsafe {
        let mut odd = [[D::zero(); NV]; MR];
        let (mut a, mut w) = (a, w);
        for _ in 0..steps / 2 {
            dot_steps::<D, MR, NV>(1, a, w, acc);
            dot_steps::<D, MR, NV>(1, a.add(MR * 4), w.add(PANEL * 4), &mut odd);
            a = a.add(2 * MR * 4);
            w = w.add(2 * PANEL * 4);
        }
        if steps % 2 == 1 {
            dot_steps::<D, MR, NV>(1, a, w, acc);
        }
        for (acc_i, odd_i) in acc.iter_mut().zip(&odd) {
            for (x, &y) in acc_i.iter_mut().zip(odd_i) {
                *x = D::add(*x, y);
            }
        }
    }
}

/// The part of K an int8 tile runs: `steps` groups of 4 k from group `start` (`a` and `w`
/// point at K's start). The driver cuts a deep K into ranges, each run over all of a block's
/// tiles in turn, so that a weight panel's range stays in L1 for them; a tile's accumulators
/// wait in `carry` between its ranges. `resume`: they start from `carry` (else from zero);
/// `suspend`: they are left there (else the tile is finished and stored). The sums are the
/// same as in one range, bit for bit: i32 sums are exact, and the f32 sums of groups keep
/// their order.
#[derive(Clone, Copy)]
pub(super) struct KRange {
    pub start: usize,
    pub steps: usize,
    pub resume: bool,
    pub suspend: bool,
    /// Valid for MR x NR f32 (one tile's accumulators, i32 or f32) when `resume` or
    /// `suspend`.
    pub carry: *mut f32,
}

/// Reads the accumulators `T` (MR x NV vectors, MR x NR values) that a suspended range left
/// at `carry`. Safety: `carry` holds a `T` written by [`suspend`].
#[inline(always)]
unsafe fn resume<T: Copy>(carry: *const f32) -> T {
    // SAFETY: the caller's contract; an unaligned read, as the write was.
    unsafe { carry.cast::<T>().read_unaligned() }
}

/// Leaves the accumulators `acc` at `carry`. Safety: `carry` is valid for `size_of::<T>()`
/// bytes (MR x NR f32).
#[inline(always)]
unsafe fn suspend<T: Copy>(carry: *mut f32, acc: T) {
    // SAFETY: the caller's contract; `T` is plain vector data, read back only as the same `T`.
    unsafe { carry.cast::<T>().write_unaligned(acc) }
}

/// The int8 microkernel over `r` (in groups of 4 along K); when the tile finishes, the exact
/// i32 sums, corrected by each row's zero point (`a_zp`, as [`DotI8::to_f32`] takes it), are
/// scaled by the row's activation scale and the channel's weight scale.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn run_i8<D: DotI8, const MR: usize, const NV: usize>(
    r: &KRange,
    a: *const u8,
    a_scale: &[f32; MR],
    a_zp: &[i32; MR],
    w: *const i8,
    col_sum: *const i32,
    w_scale: *const f32,
    out: &Out<'_>,
) {
    let l = D::S::LANES;
    debug_assert!(MR * NV * l <= MAX_TILE);
    // SAFETY: the int8 contract above, for groups up to `r.start + r.steps`, and `r`'s; the
    // caller runs on D's ISA.
    unsafe {
        let mut acc = match r.resume {
            true => resume::<[[D::I; NV]; MR]>(r.carry),
            false => [[D::zero(); NV]; MR],
        };
        let (a, w) = (a.add(r.start * MR * 4), w.add(r.start * PANEL * 4));
        dot_steps::<D, MR, NV>(r.steps, a, w, &mut acc);
        if r.suspend {
            suspend(r.carry, acc);
            return;
        }
        let mut f = [[D::S::splat(0.0); NV]; MR];
        for j in 0..NV {
            let ws = D::S::load(w_scale.add(j * l));
            for i in 0..MR {
                let v = D::to_f32(acc[i][j], col_sum.add(j * l), a_zp[i]);
                f[i][j] = D::S::mul(D::S::mul(v, ws), D::S::splat(a_scale[i]));
            }
        }
        store::<D::S, MR, NV>(&f, out);
    }
}

/// Where a grouped int8 tile reads its per-group factors (see [`run_i8_grouped`]).
pub(super) struct Groups {
    /// 4-k steps per group (the last group may have fewer).
    pub steps: usize,
    /// Groups per row.
    pub count: usize,
    /// Row `i`'s scale of group `g` at `scale[i * count + g]`.
    pub scale: *const f32,
    /// Row `i`'s zero-point term of group `g` (its scale times its zero point, as
    /// [`DotI8::to_f32`] takes the zero point) at `corr[i * count + g]`.
    pub corr: *const f32,
    /// Group `g`'s NR channel sums (f32) at `sums + g * PANEL`.
    pub sums: *const f32,
}

/// The int8 microkernel with activation scales per group of K, over `r` (which starts and,
/// unless it reaches K's end, ends on a group boundary): each group's exact i32 sums are
/// converted (exactly: a group is at most `MAX_ACT_GROUP` deep) and added into f32
/// accumulators times the row's scale for the group, less the group's zero-point term times the
/// channels' sums over the group; when the tile finishes, the total is scaled by the channel's
/// weight scale.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn run_i8_grouped<D: DotI8, const MR: usize, const NV: usize>(
    r: &KRange,
    a: *const u8,
    g: &Groups,
    w: *const i8,
    w_scale: *const f32,
    out: &Out<'_>,
) {
    let l = D::S::LANES;
    debug_assert!(MR * NV * l <= MAX_TILE);
    // SAFETY: the int8 contract above, for groups up to `r.start + r.steps`, with `g` valid for
    // MR x count factors and count groups of NR sums, and `r`'s; the caller runs on D's ISA.
    unsafe {
        let mut f = match r.resume {
            true => resume::<[[<D::S as Simd>::F; NV]; MR]>(r.carry),
            false => [[D::S::splat(0.0); NV]; MR],
        };
        // The f32 sums, through a pointer the compiler cannot see through where they are to stay
        // in memory (from `SUMS_IN_MEMORY_ROWS` rows up), else through one it keeps in
        // registers. `fp` points at `f`, which nothing else touches until it is read back below.
        let fp: *mut [[<D::S as Simd>::F; NV]; MR] = if MR >= D::SUMS_IN_MEMORY_ROWS {
            std::hint::black_box(&mut f)
        } else {
            &mut f
        };
        let (mut a, mut w) = (a.add(r.start * MR * 4), w.add(r.start * PANEL * 4));
        let end = r.start + r.steps;
        for gi in r.start / g.steps..g.count {
            if gi * g.steps >= end {
                break;
            }
            let n_steps = g.steps.min(end - gi * g.steps);
            let mut acc = [[D::zero(); NV]; MR];
            if MR <= D::SPLIT_ROWS {
                dot_steps_split::<D, MR, NV>(n_steps, a, w, &mut acc);
            } else {
                dot_steps::<D, MR, NV>(n_steps, a, w, &mut acc);
            }
            a = a.add(n_steps * MR * 4);
            w = w.add(n_steps * PANEL * 4);
            let mut sums = [D::S::splat(0.0); NV];
            for (j, s) in sums.iter_mut().enumerate() {
                *s = D::S::load(g.sums.add(gi * PANEL + j * l));
            }
            for (i, (acc_i, f_i)) in acc.iter().zip(&mut *fp).enumerate() {
                let s = D::S::splat(*g.scale.add(i * g.count + gi));
                let c = D::S::splat(-*g.corr.add(i * g.count + gi));
                for ((a, f), sum) in acc_i.iter().zip(f_i).zip(&sums) {
                    *f = D::S::fma(c, *sum, D::S::fma(D::cvt(*a), s, *f));
                }
            }
        }
        let mut f = *fp;
        if r.suspend {
            suspend(r.carry, f);
            return;
        }
        for j in 0..NV {
            let ws = D::S::load(w_scale.add(j * l));
            for f_i in f.iter_mut() {
                f_i[j] = D::S::mul(f_i[j], ws);
            }
        }
        store::<D::S, MR, NV>(&f, out);
    }
}

/// Where a bf16 microkernel reads its weights ([`run_bf16`]'s `FROM`).
pub(super) mod from {
    /// The packed pairs (`w`: `steps` rows of NR u32 spaced PANEL apart).
    pub const PACKED: u8 = 0;
    /// The packed pairs, also stored as loaded to `spill` for the block's other micro-panels
    /// (`steps` rows of `NR * W_WORDS` f32, one after another).
    pub const PACKED_AND_SPILL: u8 = 1;
    /// What a [`PACKED_AND_SPILL`] run stored (`w` is that spill, as f32).
    pub const SPILLED: u8 = 2;
}

/// Weight vector `j` of the step at `w`, from where `FROM` says (a function, not a closure:
/// see [`crate::simd::Map`]). Safety: [`run_bf16`]'s contract.
#[inline(always)]
unsafe fn load_bf16<D: DotBf16, const FROM: u8>(w: *const u32, j: usize) -> D::W {
    // SAFETY: the caller's contract: vector `j` of the step is valid for reads.
    unsafe {
        if FROM == from::SPILLED {
            D::load_spilled(w.cast::<f32>().add(j * D::S::LANES * D::W_WORDS))
        } else {
            D::load_w(w.add(j * D::S::LANES))
        }
    }
}

/// The bf16 microkernel: `steps` pairs along K of `a` (MR pairs each, `A_WORDS` u32 a pair)
/// times NV vectors of weight pairs a step, summed in f32 by [`DotBf16::dot`]; the weights from
/// where `FROM` says ([`from`]). bf16 contract: `a` is valid for `steps * MR * A_WORDS` reads;
/// `w` for `steps` rows of NR u32 spaced PANEL apart, or with [`from::SPILLED`] for
/// `steps * NR * W_WORDS` f32 reads; `spill` (read only with [`from::PACKED_AND_SPILL`]) for
/// as many writes; `c` as in the float contract.
#[inline(always)]
pub(super) unsafe fn run_bf16<D: DotBf16, const MR: usize, const NV: usize, const FROM: u8>(
    steps: usize,
    a: *const u32,
    w: *const u32,
    spill: *mut f32,
    out: &Out<'_>,
) {
    let l = D::S::LANES;
    debug_assert!(MR * NV * l <= MAX_TILE);
    // f32 words of one step's spilled weights, and of one vector's.
    let (row, vec) = (NV * l * D::W_WORDS, l * D::W_WORDS);
    // SAFETY: the bf16 contract above; the caller runs on D's ISA.
    unsafe {
        let mut acc = [[D::S::splat(0.0); NV]; MR];
        let (mut a, mut w, mut spill) = (a, w, spill);
        for _ in 0..steps {
            let mut wv = [load_bf16::<D, FROM>(w, 0); NV];
            for (j, v) in wv.iter_mut().enumerate().skip(1) {
                *v = load_bf16::<D, FROM>(w, j);
            }
            if FROM == from::PACKED_AND_SPILL {
                for (j, &v) in wv.iter().enumerate() {
                    D::spill_w(spill.add(j * vec), v);
                }
                spill = spill.add(row);
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let ai = D::bcast_a(a.add(i * D::A_WORDS));
                for (j, acc_ij) in acc_i.iter_mut().enumerate() {
                    *acc_ij = D::dot(*acc_ij, ai, wv[j]);
                }
            }
            a = a.add(MR * D::A_WORDS);
            w = if FROM == from::SPILLED {
                w.add(row)
            } else {
                w.add(PANEL)
            };
        }
        store::<D::S, MR, NV>(&acc, out);
    }
}

/// Stores an MR x NR tile of results: adds what C holds unless this is the first K block, and
/// on the last applies the bias and the epilogue.
#[inline(always)]
pub(super) unsafe fn store<S: Simd, const MR: usize, const NV: usize>(
    acc: &[[S::F; NV]; MR],
    t: &Out<'_>,
) {
    let l = S::LANES;
    let nr = NV * l;
    // SAFETY: `c` is valid for the mr x nc elements at stride ldc (the driver derived it from
    // the `&mut` C view and bounded it with `Gemm::check`); the stack tile holds MAX_TILE >=
    // MR x NR; the caller runs on S's ISA.
    unsafe {
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
                    *bv = load_cols::<S>(&b[cols(j, l, t.nc)]);
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
                }
                S::store(cp, v);
            }
        }
        // The epilogue on the tile as stored (in L1), in loops of their own: inside the loop
        // above, whether LLVM kept the accumulators in registers (rather than in a stack copy
        // updated at every k) hung on the size of the epilogue's body.
        if t.last {
            match t.epilogue {
                Epilogue::None => {}
                Epilogue::Gelu => {
                    for i in 0..MR {
                        for j in 0..NV {
                            let cp = c.add(i * ldc + j * l);
                            S::store(cp, simd::gelu::<S>(S::load(cp)));
                        }
                    }
                }
                Epilogue::Residual { r, ld } => {
                    for i in 0..t.mr {
                        for j in 0..NV {
                            let cp = c.add(i * ldc + j * l);
                            let rs = &r[i * ld..][cols(j, l, t.nc)];
                            S::store(cp, S::add(S::load(cp), load_cols::<S>(rs)));
                        }
                    }
                }
            }
        }
        if !full {
            for i in 0..t.mr {
                std::ptr::copy_nonoverlapping(tmp.as_ptr().add(i * nr), t.c.add(i * t.ldc), t.nc);
            }
        }
    }
}
