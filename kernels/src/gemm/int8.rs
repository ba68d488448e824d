//! int8 GEMM: weights quantised symmetrically per output channel (at conversion), activations
//! quantised asymmetrically per row on the fly (one scale and zero point per token), exact i32
//! sums, f32 output:
//!
//! `C[i][j] = a_scale[i] * w_scale[j] * sum_k (qa[i][k] - zero[i]) * qw[j][k] (+ bias) (+ epilogue)`
//!
//! with the weights by [`crate::quant::quantize_row_i8`]'s rule (`-127..=127`) and the
//! activations by [`crate::quant::quantize_row_asym`]'s (`0..=255`).
//!
//! Layout (docs/KERNELS.md, "Packed weight layout, int8"): K is padded with zeros to a multiple of 4 (`kp`);
//! output channels form panels of [`PANEL`]; a panel holds, for each group of 4 k, the 4 bytes
//! of each of its 32 channels in turn (128 bytes), so that one vector load gives `LANES`
//! channels x 4 k, the operand shape of `vpdpbusd` and `sdot`. Byte `(n, k)` is at
//! `(n / 32) * 32 * kp + (k / 4) * 128 + (n % 32) * 4 + k % 4`. Beside it, per channel: the f32
//! scale and the i32 sum of the channel's quantised weights, for the zero-point correction:
//! `sum (qa - zero) w = sum qa w - zero sum w`.

use super::{
    grow, interleave, kernel, panel_height, panel_rows, ALayout, ASource, Gemm, GemmScratch,
    PackTmp, PackedA, PackedAMut, Prefetch, Weights, MC, PANEL,
};
use crate::quant;
use crate::simd::{DotI8, Simd};

/// The deepest K an int8 GEMM accepts: with the +128 offset a product is at most
/// 255 x 127 = 32,385, and 65,536 of them stay below 2^31.
pub const MAX_K_I8: usize = 65_536;

/// The length in bytes of the packed form of `n x k` int8 weights.
pub fn packed_len_i8(n: usize, k: usize) -> usize {
    n.div_ceil(PANEL) * PANEL * k.div_ceil(4) * 4
}

/// Index of weight `(j, kk)` in the packed int8 layout (K = `k`).
pub fn packed_index_i8(j: usize, kk: usize, k: usize) -> usize {
    let kp = k.div_ceil(4) * 4;
    (j / PANEL) * PANEL * kp + (kk / 4) * PANEL * 4 + (j % PANEL) * 4 + kk % 4
}

/// The deepest group of activations [`ActGroups`] allows: a group's i32 sum (at most
/// 255 x 127 per element) then stays below 2^24, where its conversion to f32 is exact.
pub const MAX_ACT_GROUP: usize = 512;

/// Activations quantised per group of `size` consecutive elements of K (each group with its
/// own scale and zero point) rather than per row: an outlier then coarsens only its own
/// group's steps. The zero-point correction needs each channel's weight sum per group, `sums`.
#[derive(Clone, Copy, Debug)]
pub struct ActGroups<'a> {
    /// Elements of K per group: a multiple of 4 in `4..=MAX_ACT_GROUP`; the last group holds
    /// what remains.
    pub size: usize,
    /// [`act_group_sums`] of the packed weights for this size.
    pub sums: &'a [f32],
}

/// The number of groups of `size` that cover K = `k`.
pub fn act_groups(k: usize, size: usize) -> usize {
    k.div_ceil(size.max(1))
}

/// Each channel's sums of its quantised weights over each group of `size` elements of K, from
/// the packed int8 weights `q` (K = `k`), as f32 (exact: at most 127 x 512 in magnitude), laid
/// out for the microkernels: per panel of [`PANEL`] channels, per group, the panel's PANEL
/// sums, so that the sums of channel `j` for group `g` are at
/// `(j / PANEL) * PANEL * groups + g * PANEL + j % PANEL`. Panics unless `q` is a whole number of
/// packed panels of K = `k` and `size` is a valid group size.
pub fn act_group_sums(q: &[i8], k: usize, size: usize) -> Vec<f32> {
    assert!(
        size.is_multiple_of(4) && (4..=MAX_ACT_GROUP).contains(&size),
        "act_group_sums: group size"
    );
    let kp = k.div_ceil(4) * 4;
    let groups = act_groups(k, size);
    let panels = if kp == 0 { 0 } else { q.len() / (PANEL * kp) };
    assert_eq!(
        q.len(),
        panels * PANEL * kp,
        "act_group_sums: q is not whole panels"
    );
    let mut out = vec![0.0f32; panels * PANEL * groups];
    for p in 0..panels {
        let panel = &q[p * PANEL * kp..(p + 1) * PANEL * kp];
        for g in 0..groups {
            // Byte-wise sums over the groups of 4 k (128 bytes: 4 of each channel) inside this
            // group of K (a plain widening loop, which vectorises: this runs at model load),
            // then each channel's 4 bytes added.
            let mut bytes = [0i32; PANEL * 4];
            let fours = (g * size / 4)..((g + 1) * size / 4).min(kp / 4);
            let block = &panel[fours.start * PANEL * 4..fours.end * PANEL * 4];
            for four in block.chunks_exact(PANEL * 4) {
                for (acc, &v) in bytes.iter_mut().zip(four) {
                    *acc += i32::from(v);
                }
            }
            let mut sums = [0i32; PANEL];
            for (sum, b) in sums.iter_mut().zip(bytes.chunks_exact(4)) {
                *sum = b.iter().sum();
            }
            let dst = &mut out[(p * groups + g) * PANEL..][..PANEL];
            for (d, &s) in dst.iter_mut().zip(&sums) {
                *d = s as f32;
            }
        }
    }
    out
}

/// Packed int8 weights, borrowed (from a `.berth` file or a [`PackedI8Buf`]).
#[derive(Clone, Copy, Debug)]
pub struct PackedI8<'a> {
    /// `packed_len_i8(N, K)` bytes, in `-127..=127`.
    pub q: &'a [i8],
    /// `N` per-channel scales.
    pub scale: &'a [f32],
    /// `N` sums of each channel's quantised weights.
    pub col_sum: &'a [i32],
    /// `K` factors that multiply each row of A before it is quantised (SmoothQuant's scale
    /// migration: the converter divided the weights' columns by them), or none for all 1.
    pub input_scale: Option<&'a [f32]>,
    /// Activations quantised per group of K, or (none) per row.
    pub groups: Option<ActGroups<'a>>,
}

impl<'a> PackedI8<'a> {
    pub(super) fn check(&self, n: usize, k: usize) {
        assert!(k <= MAX_K_I8, "gemm: int8 K above MAX_K_I8");
        assert_eq!(self.q.len(), packed_len_i8(n, k), "gemm: w is not n x k");
        assert_eq!(self.scale.len(), n, "gemm: int8 scale length");
        assert_eq!(self.col_sum.len(), n, "gemm: int8 col_sum length");
        if let Some(s) = self.input_scale {
            assert_eq!(s.len(), k, "gemm: int8 input_scale length");
        }
        if let Some(g) = self.groups {
            assert!(
                g.size.is_multiple_of(4) && (4..=MAX_ACT_GROUP).contains(&g.size),
                "gemm: activation group size"
            );
            assert_eq!(
                g.sums.len(),
                n.div_ceil(PANEL) * PANEL * act_groups(k, g.size),
                "gemm: activation group sums length"
            );
        }
    }

    pub(super) fn split_at_panel(
        self,
        at: usize,
        n: usize,
        k: usize,
    ) -> (PackedI8<'a>, PackedI8<'a>) {
        let col = (at * PANEL).min(n);
        let (ql, qr) = self.q.split_at(at * PANEL * k.div_ceil(4) * 4);
        let (sl, sr) = self.scale.split_at(col);
        let (cl, cr) = self.col_sum.split_at(col);
        let (gl, gr) = match self.groups {
            Some(g) => {
                let (l, r) = g.sums.split_at(at * PANEL * act_groups(k, g.size));
                let part = |sums| Some(ActGroups { size: g.size, sums });
                (part(l), part(r))
            }
            None => (None, None),
        };
        (
            PackedI8 {
                q: ql,
                scale: sl,
                col_sum: cl,
                input_scale: self.input_scale,
                groups: gl,
            },
            PackedI8 {
                q: qr,
                scale: sr,
                col_sum: cr,
                input_scale: self.input_scale,
                groups: gr,
            },
        )
    }
}

/// Packed int8 weights, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedI8Buf {
    pub q: Vec<i8>,
    pub scale: Vec<f32>,
    pub col_sum: Vec<i32>,
}

impl PackedI8Buf {
    /// Quantises row-major f32 weights (`n x k`) per output channel and packs them.
    pub fn quantize(w: &[f32], n: usize, k: usize) -> PackedI8Buf {
        assert_eq!(w.len(), n * k, "PackedI8Buf::quantize: w is not n x k");
        let mut q = vec![0i8; n * k];
        let scale = w
            .chunks_exact(k.max(1))
            .zip(q.chunks_exact_mut(k.max(1)))
            .take(n)
            .map(|(src, dst)| quant::quantize_row_i8(src, dst))
            .collect::<Vec<f32>>();
        let scale = if k == 0 { vec![1.0; n] } else { scale };
        PackedI8Buf::from_rows(&q, scale, n, k)
    }

    /// Packs weights already quantised (row-major `n x k`, in `-127..=127`, with their `n`
    /// scales), computing the channel sums.
    pub fn from_rows(q: &[i8], scale: Vec<f32>, n: usize, k: usize) -> PackedI8Buf {
        assert_eq!(q.len(), n * k, "PackedI8Buf::from_rows: q is not n x k");
        assert_eq!(scale.len(), n, "PackedI8Buf::from_rows: scale length");
        assert!(
            q.iter().all(|&v| v != i8::MIN),
            "PackedI8Buf::from_rows: -128 is outside the scheme"
        );
        let mut packed = vec![0i8; packed_len_i8(n, k)];
        let mut col_sum = vec![0i32; n];
        for (j, sum) in col_sum.iter_mut().enumerate() {
            for kk in 0..k {
                let v = q[j * k + kk];
                packed[packed_index_i8(j, kk, k)] = v;
                *sum += i32::from(v);
            }
        }
        PackedI8Buf {
            q: packed,
            scale,
            col_sum,
        }
    }

    /// The weights borrowed, without input scales or activation groups (set `input_scale` and
    /// `groups` on the view for them).
    pub fn view(&self) -> PackedI8<'_> {
        PackedI8 {
            q: &self.q,
            scale: &self.scale,
            col_sum: &self.col_sum,
            input_scale: None,
            groups: None,
        }
    }
}

/// The blocked int8 GEMM over the microkernel `MR x (NV * LANES)` of `D` for activations
/// per row, `MRG x (NV * LANES)` per group: its tile holds f32 accumulators beside the i32
/// ones (in registers, or in memory from `D::SUMS_IN_MEMORY_ROWS` rows up). With `SMALL`
/// above MRG, a grouped GEMM of more than MRG and at most SMALL rows runs as one tile of SMALL
/// rows, which reads each weight once where MRG rows would read it twice (a few tokens). With
/// `TAIL` above 0, the last rows of a block, where they number at most TAIL and the tile is
/// taller than that, run as one tile of TAIL rows rather than one mostly padding (a token or a
/// few). `D` must be the ISA the caller runs on.
#[inline(always)]
pub(crate) unsafe fn gemm_i8<
    D: DotI8,
    const MR: usize,
    const NV: usize,
    const MRG: usize,
    const SMALL: usize,
    const TAIL: usize,
>(
    p: Gemm<'_>,
    scratch: &mut GemmScratch,
) {
    // SAFETY: the caller runs on D's ISA (this function's contract).
    unsafe { by_grouping::<D, MR, NV, MRG, SMALL, TAIL>(p, ASource::Own(scratch)) }
}

/// [`gemm_i8`] over A packed beforehand, all of its rows, by [`pack_i8`] of the same `D`,
/// `MR`, `MRG`, `SMALL` and `TAIL` for the same M (one packing that several threads' parts of N
/// share). `D` must be the ISA the caller runs on; panics if `a` holds fewer rows than the
/// packing of M takes.
#[inline(always)]
pub(crate) unsafe fn gemm_i8_packed<
    D: DotI8,
    const MR: usize,
    const NV: usize,
    const MRG: usize,
    const SMALL: usize,
    const TAIL: usize,
>(
    p: Gemm<'_>,
    a: &PackedA,
) {
    // SAFETY: the caller runs on D's ISA (this function's contract).
    unsafe { by_grouping::<D, MR, NV, MRG, SMALL, TAIL>(p, ASource::Packed(a)) }
}

/// Whether a grouped GEMM of `m` rows runs as one tile of SMALL rows ([`gemm_i8`]).
pub(crate) const fn small_tile(m: usize, mrg: usize, small: usize) -> bool {
    small > mrg && m > mrg && m <= small
}

/// [`blocks_i8`] on MR rows per micro-panel for activations per row, MRG or SMALL per group.
/// Safety: the caller runs on D's ISA.
#[inline(always)]
unsafe fn by_grouping<
    D: DotI8,
    const MR: usize,
    const NV: usize,
    const MRG: usize,
    const SMALL: usize,
    const TAIL: usize,
>(
    p: Gemm<'_>,
    source: ASource<'_>,
) {
    p.check();
    let Weights::I8(w) = p.w else {
        panic!("gemm: the table routed other weights here");
    };
    // SAFETY: the caller runs on D's ISA (this function's contract).
    unsafe {
        match w.groups {
            Some(_) if small_tile(p.m(), MRG, SMALL) => {
                blocks_i8::<D, SMALL, NV, TAIL>(p, w, source)
            }
            Some(_) => blocks_i8::<D, MRG, NV, TAIL>(p, w, source),
            None => blocks_i8::<D, MR, NV, TAIL>(p, w, source),
        }
    }
}

/// Quantises and packs rows `rows` of `p`'s A into `out` (row `rows.start` at its row 0) as
/// [`gemm_i8`] packs a block of them, MR (per row) or MRG or SMALL (per group, by `p`'s M) rows
/// to a micro-panel and with its `TAIL`: `rows.start` must be a multiple of that height, `rows`
/// end at a micro-panel boundary or at `p`'s last row (where the tail is), and `out` hold
/// [`panel_rows`] of `rows.len()`. What [`gemm_i8_packed`] reads once every part has been
/// packed.
#[inline(always)]
pub(crate) unsafe fn pack_i8<
    D: DotI8,
    const MR: usize,
    const MRG: usize,
    const SMALL: usize,
    const TAIL: usize,
>(
    p: &Gemm<'_>,
    rows: std::ops::Range<usize>,
    out: PackedAMut<'_>,
    tmp: &mut PackTmp,
) {
    p.check();
    let Weights::I8(w) = p.w else {
        panic!("gemm: the table routed other weights here");
    };
    let a = &p.a[rows.start * p.lda..];
    let group = w.groups.map(|g| g.size);
    let (mc, k, scale) = (rows.len(), p.k, w.input_scale);
    if group.is_some() && small_tile(p.m(), MRG, SMALL) {
        pack_a_i8::<D, SMALL, TAIL>(a, p.lda, mc, k, scale, group, AOrder::Panels, out, tmp)
    } else if group.is_some() {
        pack_a_i8::<D, MRG, TAIL>(a, p.lda, mc, k, scale, group, AOrder::Panels, out, tmp)
    } else {
        pack_a_i8::<D, MR, TAIL>(a, p.lda, mc, k, scale, group, AOrder::Panels, out, tmp)
    }
}

/// Deepest K an int8 tile runs in one go, so that the weight panel's range (32 channels x
/// KC_I8 bytes, 24 KiB) and the A micro-panel's stay in L1 while the block's tiles run it.
/// BERT-base's down projection (K = 3072) runs in four ranges, MiniLM's (1536) in two. 768
/// beat 512 and 1024 (`gemm_sweep`, M = 128); see docs/KERNELS.md.
pub const KC_I8: usize = 768;

/// [`gemm_i8`]'s loops over one microkernel shape (and its tail, as [`gemm_i8`] says).
#[inline(always)]
unsafe fn blocks_i8<D: DotI8, const MR: usize, const NV: usize, const TAIL: usize>(
    mut p: Gemm<'_>,
    w: PackedI8<'_>,
    mut source: ASource<'_>,
) {
    let l = D::S::LANES;
    let nr = NV * l;
    debug_assert!(PANEL.is_multiple_of(nr));
    let (m, n, k) = (p.m(), p.n(), p.k);
    if m == 0 || n == 0 {
        return;
    }
    let steps = k.div_ceil(4);
    let kp = steps * 4;
    // Blocks of whole micro-panels, so that A packed whole has each block's rows where a
    // block's packing would put them (and only the last block has a tail).
    let mc_step = MC / MR * MR;
    // Activation groups: `count` per row, of `size` elements (one group of all K per row).
    let (size, count) = match w.groups {
        Some(g) => (g.size, act_groups(k, g.size)),
        None => (k.max(1), 1),
    };
    let layout = ALayout::of(&p);
    source.check(layout, panel_rows::<MR, TAIL>(m));
    let c_ptr = p.c.as_mut_ptr();
    // K in ranges of at most KC_I8 (whole groups), each run over all of a block's tiles in
    // turn (`kernel::KRange`); each tile's accumulators wait in `carry` (MR x NR values at row
    // `ir` times NR) between its ranges, which writes them before it reads them.
    let range = match w.groups {
        Some(_) => (KC_I8 / size).max(1) * (size / 4),
        None => KC_I8 / 4,
    };
    let ranges = steps.div_ceil(range).max(1);
    let mut carry = std::mem::MaybeUninit::<[f32; MC * PANEL]>::uninit();
    let carry = carry.as_mut_ptr().cast::<f32>();
    for ic in (0..m).step_by(mc_step) {
        let mc = mc_step.min(m - ic);
        // The packed rows of this block: row `ir` of the block is row `base + ir` of `packed`.
        // (A match, not a closure: the release build compiled a closure here out of line,
        // without the kernel's target features, and took twice the time.)
        let (packed, base) = match &mut source {
            ASource::Own(scratch) => {
                let GemmScratch { a, tmp, .. } = &mut **scratch;
                let out = a.rows_mut(layout, panel_rows::<MR, TAIL>(mc));
                let grouped = w.groups.map(|_| size);
                let a_ic = &p.a[ic * p.lda..];
                pack_a_i8::<D, MR, TAIL>(
                    a_ic,
                    p.lda,
                    mc,
                    k,
                    w.input_scale,
                    grouped,
                    AOrder::Panels,
                    out,
                    tmp,
                );
                (&*a, 0)
            }
            ASource::Packed(a) => (&**a, ic),
        };
        for jr in (0..n).step_by(nr) {
            let nc = nr.min(n - jr);
            let w_off = (jr / PANEL) * PANEL * kp + (jr % PANEL) * 4;
            // The NR channel sums and scales, in place; a partial slice reads them padded with
            // zeros.
            let (mut cs_pad, mut ws_pad) = ([0i32; PANEL], [0.0f32; PANEL]);
            let (cs, ws) = if nc == nr {
                (w.col_sum[jr..].as_ptr(), w.scale[jr..].as_ptr())
            } else {
                cs_pad[..nc].copy_from_slice(&w.col_sum[jr..jr + nc]);
                ws_pad[..nc].copy_from_slice(&w.scale[jr..jr + nc]);
                (cs_pad.as_ptr(), ws_pad.as_ptr())
            };
            // Group sums of this slice: whole panels are stored, so NR of them are always there.
            // Not sliced: with K = 0 there are no groups, and none are read.
            let sums = w.groups.map(|g| {
                let at = (jr / PANEL) * PANEL * count + jr % PANEL;
                g.sums.as_ptr().wrapping_add(at)
            });
            for kr in 0..ranges {
                // The weights of the next K range of this slice, or of the next slice's first
                // (whole rows of its panel: 4 PANEL bytes a group of 4 k).
                let (jn, kn) = if kr + 1 < ranges {
                    (jr, kr + 1)
                } else {
                    (jr + nr, 0)
                };
                let next = if jn < n {
                    let from = (jn / PANEL) * PANEL * kp + kn * range * 4 * PANEL;
                    let len = range.min(steps - kn * range) * 4 * PANEL;
                    Prefetch::new(w.q, from, len, mc.div_ceil(MR))
                } else {
                    Prefetch::NONE
                };
                for ir in (0..mc).step_by(MR) {
                    next.part(ir / MR);
                    let start = kr * range;
                    let r = kernel::KRange {
                        start,
                        steps: range.min(steps - start),
                        resume: kr > 0,
                        suspend: kr + 1 < ranges,
                        // Inside `carry`: `ir + MR <= mc_step <= MC` rows of NR <= PANEL.
                        carry: carry.wrapping_add(ir * nr),
                    };
                    let t = Tile {
                        out: p.tile_out(c_ptr, (ic + ir, jr), (MR.min(mc - ir), nc), true, true),
                        row: base + ir,
                        kp,
                        // Not sliced: with k = 0 there are no weights, and none are read.
                        w: w.q.as_ptr().wrapping_add(w_off),
                        cs,
                        ws,
                        sums,
                        size,
                        count,
                    };
                    // SAFETY: `check` validated every size. The packing holds this block's
                    // micro-panels, of the heights `panel_height` gives, from row `base + ir`
                    // (codes, with scales and zero points or per-group terms: whole panels);
                    // the slice's weights are `steps` groups of 128 bytes from `w_off`; its NR
                    // sums and scales are in place when nc = NR, else padded; its `count`
                    // groups of NR sums lie PANEL apart in its panel (whole panels are stored);
                    // C at (ic + ir, jr) holds mr x nc; `carry` as above. The caller runs on
                    // D's ISA.
                    unsafe {
                        if panel_height::<MR, TAIL>(ir, mc) == MR {
                            tile_i8::<D, MR, NV>(&r, &t, packed)
                        } else {
                            tile_i8::<D, TAIL, NV>(&r, &t, packed)
                        }
                    }
                }
            }
        }
    }
}

/// One tile of [`blocks_i8`]: where it writes, and what it reads besides the packed A.
struct Tile<'a> {
    out: kernel::Out<'a>,
    /// Its first row in the packed A.
    row: usize,
    /// Bytes of a packed row of A (K padded to a multiple of 4).
    kp: usize,
    /// Its slice's weights: for each group of 4 k, 4 bytes of each of its NR channels, the
    /// groups `4 * PANEL` bytes apart.
    w: *const i8,
    /// Its NR channels' weight sums and scales (in place, or padded with zeros).
    cs: *const i32,
    ws: *const f32,
    /// With activation groups: its slice's group sums (`count` groups of NR, PANEL apart).
    sums: Option<*const f32>,
    /// Elements of K per activation group, and groups per row (all K and 1 per row).
    size: usize,
    count: usize,
}

/// Runs the MR-row micro-panel at `t.row` of `packed` through the int8 microkernel (grouped
/// where `t.sums` is given) over `r`. Safety: the caller runs on D's ISA; `packed` holds
/// MR rows of `t.kp` codes from `t.row`, with their scales and zero points (or per group, MR
/// x count scales and terms), `t.w` is valid for the slice's weights over K (`t.kp / 4`
/// groups of 128 bytes, 4 NR of each), `t.cs` and `t.ws` for NR values, `t.sums` for `count`
/// groups of NR sums PANEL apart, `t.out` for its mr x nc elements of C, and `r.carry` for MR
/// x NR values (this tile's earlier range wrote them before a later one reads them).
#[inline(always)]
unsafe fn tile_i8<D: DotI8, const MR: usize, const NV: usize>(
    r: &kernel::KRange,
    t: &Tile<'_>,
    packed: &PackedA,
) {
    let pr = t.row;
    let a = packed.codes[pr * t.kp..].as_ptr();
    if let Some(sums) = t.sums {
        let g = kernel::Groups {
            steps: t.size / 4,
            count: t.count,
            scale: packed.scale[pr * t.count..].as_ptr(),
            corr: packed.corr[pr * t.count..].as_ptr(),
            sums,
        };
        // SAFETY: this function's contract, which is `run_i8_grouped`'s.
        unsafe { kernel::run_i8_grouped::<D, MR, NV>(r, a, &g, t.w, t.ws, &t.out) };
        return;
    }
    let mut a_scale = [0.0f32; MR];
    a_scale.copy_from_slice(&packed.scale[pr..pr + MR]);
    let mut a_zp = [0i32; MR];
    a_zp.copy_from_slice(&packed.zp[pr..pr + MR]);
    // SAFETY: this function's contract, which is `run_i8`'s.
    unsafe { kernel::run_i8::<D, MR, NV>(r, a, &a_scale, &a_zp, t.w, t.cs, t.ws, &t.out) };
}

/// How [`pack_a_i8`] lays out a block of A's codes (`kp` bytes a row). Rows and tiles are the
/// AMX tiles' operands (x86-64 only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) enum AOrder {
    /// MR-row micro-panels, 4 bytes of each row in turn (the VNNI and NEON kernels' operand).
    Panels,
    /// Whole rows, row `r` at `r * kp` (the AMX tiles' operand: a tile is 16 rows `kp` bytes
    /// apart).
    Rows,
    /// Whole tiles: the run of 16 rows from row `16 b` at `16 b * kp`, as `kp / 64` tiles of 16
    /// rows x 64 bytes (1 KiB each, row `r % 16` of a tile at `64 (r % 16)`) one after another
    /// along K, so that a tile is 1 KiB in one piece. `kp` a multiple of 64 and MR of 16.
    Tiles,
}

/// Quantises `mc` rows of A (all of K) and packs them into MR-row micro-panels of `out` (the last
/// of TAIL rows where [`panel_rows`] says): panel `q` holds, for each group of 4 k, the 4 bytes of
/// each of its rows (the codes `q`, or `q - 128` when `D` multiplies signed bytes; padding past `k`
/// and rows past `mc` hold byte 0, and those rows have scale 0). With `input_scale`, each row is
/// first multiplied by it, element by element. Per row (`group` none): the scale into
/// `out.scale[r]` and the zero point as [`DotI8::to_f32`] takes it into `out.zp[r]`. Per group of
/// `group` elements (`count` per row): group `g`'s scale into `out.scale[r * count + g]` and its
/// scale times that zero point into `out.corr[r * count + g]`. `out` holds at least [`panel_rows`]
/// of `mc` rows of `ALayout::of` the GEMM.
///
/// `order` [`AOrder::Rows`] (the AMX tiles' operand) stores the rows whole instead, row `r`
/// at `r * kp`, `mc` rounded up to a multiple of MR (TAIL 0), quantised straight into place;
/// [`AOrder::Tiles`] stores each run of 16 rows as whole tiles (module docs of `AOrder`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn pack_a_i8<D: DotI8, const MR: usize, const TAIL: usize>(
    a: &[f32],
    lda: usize,
    mc: usize,
    k: usize,
    input_scale: Option<&[f32]>,
    group: Option<usize>,
    order: AOrder,
    out: PackedAMut<'_>,
    tmp: &mut PackTmp,
) {
    let kp = k.div_ceil(4) * 4;
    debug_assert!(order != AOrder::Tiles || (kp.is_multiple_of(64) && MR.is_multiple_of(16)));
    // Signed instructions take `q - 128`: XOR 0x80 on each byte.
    let (flip, zp_shift) = if D::OFFSET {
        (0u32, 0)
    } else {
        (0x8080_8080u32, 128)
    };
    let (size, count) = match group {
        Some(size) => (size, act_groups(k, size)),
        None => (k.max(1), 1),
    };
    let rows = panel_rows::<MR, TAIL>(mc);
    // One micro-panel's rows of codes, before they are interleaved.
    grow(&mut tmp.row_u8, MR * kp, 0);
    if input_scale.is_some() {
        grow(&mut tmp.row_f32, k, 0.0);
    }
    for r in 0..rows {
        let (q, ri) = (r / MR, r % MR);
        let codes = match order {
            AOrder::Rows => &mut out.codes[r * kp..(r + 1) * kp],
            AOrder::Panels => &mut tmp.row_u8[ri * kp..(ri + 1) * kp],
            // One row, put in its tiles below.
            AOrder::Tiles => &mut tmp.row_u8[..kp],
        };
        // The K padding is byte 0 (the buffer may hold a longer row of an earlier call).
        codes[k..].fill(0);
        if r < mc {
            let mut row = &a[r * lda..r * lda + k];
            if let Some(m) = input_scale {
                let scaled = &mut tmp.row_f32[..k];
                // SAFETY: the caller runs on D's ISA, whose f32 vocabulary is D::S.
                unsafe { quant::mul_into::<D::S>(row, m, scaled) };
                row = scaled;
            }
            if group.is_none() {
                // With K = 0 the loop below sets nothing.
                out.scale[r] = 0.0;
                out.zp[r] = 0;
            }
            for (g, (src, dst)) in row
                .chunks(size)
                .zip(codes[..k].chunks_mut(size))
                .enumerate()
            {
                // SAFETY: the caller runs on D's ISA, whose f32 vocabulary is D::S.
                let (scale, zero) = unsafe { quant::quantize_row_asym_simd::<D::S>(src, dst) };
                let zp = zero - zp_shift;
                if group.is_some() {
                    out.scale[r * count + g] = scale;
                    out.corr[r * count + g] = scale * zp as f32;
                } else {
                    out.scale[r] = scale;
                    out.zp[r] = zp;
                }
            }
            if flip != 0 {
                codes[..k].iter_mut().for_each(|c| *c ^= 0x80);
            }
        } else {
            codes[..k].fill(0);
            out.scale[r * count..(r + 1) * count].fill(0.0);
            if group.is_some() {
                out.corr[r * count..(r + 1) * count].fill(0.0);
            } else {
                out.zp[r] = 0;
            }
        }
        match order {
            AOrder::Panels if ri + 1 == panel_height::<MR, TAIL>(r - ri, mc) => {
                let panel = &mut out.codes[q * MR * kp..(q * MR + ri + 1) * kp];
                if ri + 1 == MR {
                    interleave::<u8, MR, 4>(&tmp.row_u8[..MR * kp], panel);
                } else {
                    interleave::<u8, TAIL, 4>(&tmp.row_u8[..TAIL * kp], panel);
                }
            }
            AOrder::Tiles => {
                // Row r's 64-byte runs of K, each in row r % 16 of its tile of the 16 rows.
                let tiles = &mut out.codes[r / 16 * 16 * kp..(r / 16 + 1) * 16 * kp];
                for (t, run) in tmp.row_u8[..kp].chunks_exact(64).enumerate() {
                    tiles[t * 1024 + r % 16 * 64..][..64].copy_from_slice(run);
                }
            }
            _ => {}
        }
    }
}
