//! GEMM: `C = A * W^T (+ bias) (+ epilogue)`, A the activations (`M x K` f32, row stride
//! `lda`), W the weights (`N x K`, PyTorch's `[out_features, in_features]`) as f32, f16 or int8,
//! pre-packed into the layout the microkernels read ([`pack_weights`], [`PackedI8Buf::quantize`]).
//!
//! BLIS structure (docs/KERNELS.md, "GEMM"):
//!
//! ```text
//! LOOP 5  threads take disjoint ranges of weight panels (N); int8 and bf16 pack each MC
//!         block of A once between them first
//! LOOP 4    for each KC block of K (float weights only)
//! LOOP 3      for each MC block of M: pack A into MR-row micro-panels (caller's scratch)
//! LOOP 2        for each NR slice of the thread's panels
//! LOOP 1          for each MR micro-panel: the MR x NR microkernel
//! ```
//!
//! Blocking, derived from the caches of the CPUs berth targets (L1d 32-48 KiB, L2 1-2 MiB):
//! - MC = 256 and KC <= 768: the packed A block (256 x 768 f32 = 768 KiB) stays in L2 across
//!   the NR loop.
//! - The W micro-panel (KC x 32 f32 = 96 KiB) is reused by every MR micro-panel of the block
//!   from L2, not L1: it supplies 128 bytes per k against 16 cycles of FMAs (AVX-512 8 x 32),
//!   far below L2 bandwidth, so KC is bounded by L2. K is cut into balanced blocks, so that no
//!   block is a short remainder (K = 768 as 512 + 256 cost up to 10% with KC = 512).
//! - N is not blocked further: a thread's W panels for one K block stream through once per MC
//!   block, which for BERT shapes (M <= 512) is once or twice.
//! - int8 does not block K: a row's activations are quantised with one scale over all of K,
//!   and its i32 sums must stay exact until the scales are applied. Its blocks are 4x smaller
//!   than f32's for the same K (256 x 3072 bytes of A = 768 KiB, 32 x 3072 bytes of W = 96 KiB
//!   for BERT's deepest K), so the same cache budget holds.
//!
//! Every C element is computed by the same sequence of operations whatever the thread count or
//! the split, so results are bit-identical across thread counts.

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
mod bf16;
mod int8;
mod kernel;

#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
pub use amx::gemm_tiles_in_tile_order;
#[cfg(target_arch = "x86_64")]
pub use amx::{amx_min_rows, AMX_MIN_ROWS_BF16, AMX_MIN_ROWS_I8};
pub(crate) use bf16::{gemm_bf16, gemm_bf16_packed, pack_bf16};
pub use bf16::{
    pack_weights_bf16, packed_index_bf16, packed_len_bf16, repack_weights_bf16, to_bf16,
};
pub use int8::{
    act_group_sums, act_groups, packed_index_i8, packed_len_i8, ActGroups, PackedI8, PackedI8Buf,
    KC_I8, MAX_ACT_GROUP, MAX_K_I8,
};
pub(crate) use int8::{gemm_i8, gemm_i8_packed, pack_i8};

use half::f16;
use kernel::Elem;

use crate::simd::Simd;
use crate::Kernels;

/// Columns per packed weight panel. A multiple of every microkernel's NR (32 on AVX-512, 16 on
/// AVX2 and NEON), so one packed layout serves every ISA.
pub const PANEL: usize = 32;
/// K block (see the module docs for the derivation).
pub const KC: usize = 768;
/// M block (see the module docs for the derivation).
pub const MC: usize = 256;

/// Packs row-major weights `w` (`n x k`, f32 or f16) into panels of [`PANEL`] output channels:
/// panel `p` holds, for each `k` in order, the weights of channels `p*32 .. p*32+32` (zero past
/// `n`). Element `(n, k)` is at `(n / 32) * 32 * k_total + k * 32 + n % 32`.
pub fn pack_weights<T: Copy + Default>(w: &[T], n: usize, k: usize) -> Vec<T> {
    assert_eq!(w.len(), n * k, "pack_weights: w is not n x k");
    let panels = n.div_ceil(PANEL);
    let mut out = vec![T::default(); panels * PANEL * k];
    for (row, wr) in w.chunks_exact(k.max(1)).enumerate().take(n) {
        let (p, col) = (row / PANEL, row % PANEL);
        let base = p * PANEL * k;
        for (kk, &v) in wr.iter().enumerate() {
            out[base + kk * PANEL + col] = v;
        }
    }
    out
}

/// Packs an operand made at run time (attention's keys) as [`pack_weights`] does, into `out`
/// (`packed_len(n, k)` values) without allocating: row `r` of the `n x k` source starts at
/// `src[r * ld]`.
pub fn pack_rows_into(src: &[f32], ld: usize, n: usize, k: usize, out: &mut [f32]) {
    assert_eq!(out.len(), packed_len(n, k), "pack_rows_into: out length");
    assert!(ld >= k, "pack_rows_into: ld < k");
    if n > 0 {
        assert!(
            src.len() >= (n - 1) * ld + k,
            "pack_rows_into: src too short"
        );
    }
    out.fill(0.0);
    for row in 0..n {
        let base = (row / PANEL) * PANEL * k + row % PANEL;
        for (kk, &v) in src[row * ld..row * ld + k].iter().enumerate() {
            out[base + kk * PANEL] = v;
        }
    }
}

/// Packs the transpose of a run-time operand (attention's values): the weights are `n x k`
/// with element `(c, j)` at `src[j * ld + c]` (the source is `k` rows of `n`), which in the
/// packed layout is a copy of 32-value runs of each source row. `out` holds
/// `packed_len(n, k)` values; nothing is allocated.
pub fn pack_cols_into(src: &[f32], ld: usize, n: usize, k: usize, out: &mut [f32]) {
    assert_eq!(out.len(), packed_len(n, k), "pack_cols_into: out length");
    assert!(ld >= n, "pack_cols_into: ld < n");
    if k > 0 {
        assert!(
            src.len() >= (k - 1) * ld + n,
            "pack_cols_into: src too short"
        );
    }
    for p in 0..n.div_ceil(PANEL) {
        let cols = p * PANEL..((p + 1) * PANEL).min(n);
        let width = cols.len();
        for j in 0..k {
            let dst = &mut out[p * PANEL * k + j * PANEL..][..PANEL];
            dst[..width].copy_from_slice(&src[j * ld + cols.start..j * ld + cols.end]);
            dst[width..].fill(0.0);
        }
    }
}

/// The length of the packed form of `n x k` float weights.
pub fn packed_len(n: usize, k: usize) -> usize {
    n.div_ceil(PANEL) * PANEL * k
}

/// Packed weights of one GEMM, in one of the three types.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    /// f32, packed by [`pack_weights`] (`packed_len(N, K)` values).
    F32(&'a [f32]),
    /// f16, packed by [`pack_weights`] and widened to f32 in registers.
    F16(&'a [f16]),
    /// int8 per output channel, packed by [`PackedI8Buf`].
    I8(PackedI8<'a>),
    /// bfloat16, packed by [`pack_weights_bf16`] (`packed_len_bf16(N, K)` values); the
    /// activations are rounded to bfloat16 too.
    Bf16(&'a [half::bf16]),
}

impl<'a> Weights<'a> {
    /// The bytes a GEMM reads of these weights (for int8, with the scales and channel sums;
    /// without the optional input scales and activation-group sums, which are per K).
    pub fn bytes(&self) -> usize {
        match self {
            Weights::F32(w) => 4 * w.len(),
            Weights::F16(w) => 2 * w.len(),
            Weights::Bf16(w) => 2 * w.len(),
            Weights::I8(w) => w.q.len() + 4 * (w.scale.len() + w.col_sum.len()),
        }
    }

    /// The weights of panels `..at` and of panels `at..` (the parts of a split between
    /// threads). `n` and `k` are the GEMM's.
    fn split_at_panel(self, at: usize, n: usize, k: usize) -> (Weights<'a>, Weights<'a>) {
        match self {
            Weights::F32(w) => {
                let (l, r) = w.split_at(at * PANEL * k);
                (Weights::F32(l), Weights::F32(r))
            }
            Weights::F16(w) => {
                let (l, r) = w.split_at(at * PANEL * k);
                (Weights::F16(l), Weights::F16(r))
            }
            Weights::I8(w) => {
                let (l, r) = w.split_at_panel(at, n, k);
                (Weights::I8(l), Weights::I8(r))
            }
            Weights::Bf16(w) => {
                let (l, r) = w.split_at(at * PANEL * k.div_ceil(2) * 2);
                (Weights::Bf16(l), Weights::Bf16(r))
            }
        }
    }
}

/// What happens to `A W^T + bias` before it is stored.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// Store as is.
    None,
    /// GELU (erf form), as `crate::elementwise` computes it.
    Gelu,
    /// Add a residual (`M x N`, row stride `ld`).
    Residual { r: &'a [f32], ld: usize },
}

/// A mutable view of a row-major `rows x cols` matrix with row stride `ld`: like `&mut`, it
/// is the only access to its elements. [`MatMut::split_cols`] divides one into two views of
/// disjoint columns, which is how threads share one output matrix.
#[derive(Debug)]
pub struct MatMut<'a> {
    ptr: std::ptr::NonNull<f32>,
    rows: usize,
    cols: usize,
    ld: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `MatMut` is the unique access to its elements, as `&mut [f32]` is, which is Send.
unsafe impl Send for MatMut<'_> {}
// SAFETY: through `&MatMut` only its shape can be read (every access to its elements takes
// `&mut self`), as `&&mut [f32]`, which is Sync, allows.
unsafe impl Sync for MatMut<'_> {}

impl<'a> MatMut<'a> {
    /// Views `data` as `rows x cols` at row stride `ld`. Panics if `data` is too short or
    /// `ld < cols`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> MatMut<'a> {
        assert!(ld >= cols, "MatMut: ld < cols");
        if rows > 0 {
            assert!(
                data.len() >= (rows - 1) * ld + cols,
                "MatMut: data too short"
            );
        }
        MatMut {
            ptr: std::ptr::NonNull::from(data).cast(),
            rows,
            cols,
            ld,
            _borrow: std::marker::PhantomData,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn ld(&self) -> usize {
        self.ld
    }

    /// Row `i` (its `cols` elements). Panics if `i >= rows`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "MatMut: row out of range");
        // SAFETY: row i < rows starts at i * ld and holds cols <= ld elements, inside the
        // extent `new` checked (or the parent view's, for a split); `&mut self` makes it the
        // only access for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(i * self.ld), self.cols) }
    }

    /// Rows `range` of this view, as a view that borrows it.
    pub fn rows_mut(&mut self, range: std::ops::Range<usize>) -> MatMut<'_> {
        assert!(
            range.start <= range.end && range.end <= self.rows,
            "MatMut: rows out of range"
        );
        let ptr = self.ptr.as_ptr().wrapping_add(range.start * self.ld);
        MatMut {
            ptr: std::ptr::NonNull::new(ptr).unwrap_or(self.ptr),
            rows: range.len(),
            cols: self.cols,
            ld: self.ld,
            _borrow: std::marker::PhantomData,
        }
    }

    /// Rows `0..at` and `at..rows`, as two views of disjoint elements.
    pub fn split_rows(self, at: usize) -> (MatMut<'a>, MatMut<'a>) {
        assert!(at <= self.rows, "MatMut: split past the last row");
        let lower = self.ptr.as_ptr().wrapping_add(at * self.ld);
        let upper = MatMut {
            rows: at,
            _borrow: std::marker::PhantomData,
            ..self
        };
        let lower = MatMut {
            ptr: std::ptr::NonNull::new(lower).unwrap_or(self.ptr),
            rows: self.rows - at,
            _borrow: std::marker::PhantomData,
            ..self
        };
        (upper, lower)
    }

    /// Columns `0..at` and `at..cols`, as two views of disjoint elements.
    pub fn split_cols(self, at: usize) -> (MatMut<'a>, MatMut<'a>) {
        assert!(at <= self.cols, "MatMut: split past the last column");
        let right = self.ptr.as_ptr().wrapping_add(at);
        let left = MatMut {
            cols: at,
            _borrow: std::marker::PhantomData,
            ..self
        };
        let right = MatMut {
            ptr: std::ptr::NonNull::new(right).unwrap_or(self.ptr),
            cols: self.cols - at,
            _borrow: std::marker::PhantomData,
            ..self
        };
        (left, right)
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr.as_ptr()
    }
}

/// One GEMM call. `M` and `N` are the rows and columns of `c`.
#[derive(Debug)]
pub struct Gemm<'a> {
    pub k: usize,
    /// `M x K`, row stride `lda >= k`.
    pub a: &'a [f32],
    pub lda: usize,
    /// The packed weights, `N x K`.
    pub w: Weights<'a>,
    /// `N` elements, or none.
    pub bias: Option<&'a [f32]>,
    pub epilogue: Epilogue<'a>,
    /// The `M x N` output; only its elements are written.
    pub c: MatMut<'a>,
}

impl<'a> Gemm<'a> {
    /// Where the tile at `(row, col)` of C (`mr x nc` valid elements) is stored, with the bias
    /// and residual from that column and row. `c_ptr` is the view's pointer, taken once.
    fn tile_out(
        &self,
        c_ptr: *mut f32,
        (row, col): (usize, usize),
        (mr, nc): (usize, usize),
        first: bool,
        last: bool,
    ) -> kernel::Out<'a> {
        let ldc = self.c.ld();
        kernel::Out {
            first,
            last,
            // In the view for row < m and col < n (the kernels' contract); not dereferenced here.
            c: c_ptr.wrapping_add(row * ldc + col),
            ldc,
            mr,
            nc,
            bias: self.bias.map(|b| &b[col..]),
            epilogue: match self.epilogue {
                Epilogue::Residual { r, ld } => Epilogue::Residual {
                    r: &r[row * ld + col..],
                    ld,
                },
                e => e,
            },
        }
    }

    pub fn m(&self) -> usize {
        self.c.rows()
    }

    pub fn n(&self) -> usize {
        self.c.cols()
    }

    /// Checks every size, so that no kernel can read or write out of bounds. Panics on a
    /// caller's bug (these are not data errors).
    pub(crate) fn check(&self) {
        let (m, n, k) = (self.m(), self.n(), self.k);
        assert!(self.lda >= k, "gemm: lda < k");
        if m > 0 {
            assert!(self.a.len() >= (m - 1) * self.lda + k, "gemm: a too short");
        }
        match self.w {
            Weights::F32(w) => assert_eq!(w.len(), packed_len(n, k), "gemm: w is not n x k"),
            Weights::F16(w) => assert_eq!(w.len(), packed_len(n, k), "gemm: w is not n x k"),
            Weights::I8(w) => w.check(n, k),
            Weights::Bf16(w) => {
                assert_eq!(w.len(), packed_len_bf16(n, k), "gemm: w is not n x k")
            }
        }
        if let Some(b) = self.bias {
            assert_eq!(b.len(), n, "gemm: bias length");
        }
        if let Epilogue::Residual { r, ld } = self.epilogue {
            assert!(ld >= n, "gemm: residual stride");
            if m > 0 {
                assert!(r.len() >= (m - 1) * ld + n, "gemm: residual too short");
            }
        }
    }
}

/// Reusable working memory of GEMM calls (the packed A block). After warm-up, a call
/// allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct GemmScratch {
    packed_a: Vec<f32>,
    /// One panel's KC block of half weights, widened; the bf16 GEMM's NR slice of widened
    /// weight pairs (`DotBf16::SPILL`).
    widened: Vec<f32>,
    /// The int8 and bf16 GEMMs' packed A block; in the first scratch of [`gemm_par`], also the
    /// block that its threads pack once between them.
    a: PackedA,
    /// What packing A goes through.
    tmp: PackTmp,
}

/// A packed for the int8 or bf16 microkernels, with its per-row parameters. Each buffer holds
/// a whole number of rows of its [`ALayout`], row `r`'s at `r` times its length per row.
#[derive(Clone, Debug, Default)]
pub(crate) struct PackedA {
    /// int8 codes: MR-row micro-panels, or whole rows for the AMX tiles.
    pub(crate) codes: Vec<u8>,
    /// int8: per row, or per row and activation group, the scale.
    pub(crate) scale: Vec<f32>,
    /// int8 per row: the zero point, as [`crate::simd::DotI8::to_f32`] takes it.
    pub(crate) zp: Vec<i32>,
    /// int8 per activation group: the scale times the zero point.
    pub(crate) corr: Vec<f32>,
    /// bf16 pairs (or their values widened to f32: [`crate::simd::DotBf16::A_WORDS`]): MR-row
    /// micro-panels, or whole rows for the AMX tiles.
    pub(crate) bf16: Vec<u32>,
}

/// What packing one row of A takes in each buffer of a [`PackedA`] for one GEMM.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ALayout {
    codes: usize,
    scale: usize,
    zp: usize,
    corr: usize,
    bf16: usize,
}

impl ALayout {
    /// The layout `p`'s weights call for (nothing per row for float weights, which pack A
    /// their own way).
    pub(crate) fn of(p: &Gemm<'_>) -> ALayout {
        let none = ALayout {
            codes: 0,
            scale: 0,
            zp: 0,
            corr: 0,
            bf16: 0,
        };
        match p.w {
            Weights::I8(w) => {
                let groups = w.groups.map(|g| act_groups(p.k, g.size));
                ALayout {
                    codes: p.k.div_ceil(4) * 4,
                    scale: groups.unwrap_or(1),
                    zp: usize::from(groups.is_none()),
                    corr: groups.unwrap_or(0),
                    ..none
                }
            }
            Weights::Bf16(_) => ALayout {
                bf16: p.k.div_ceil(2),
                ..none
            },
            Weights::F32(_) | Weights::F16(_) => none,
        }
    }

    /// This layout with `words` u32 per pair of bf16 activations (the kernel's
    /// [`crate::simd::DotBf16::A_WORDS`]) instead of one.
    pub(crate) fn bf16_words(self, words: usize) -> ALayout {
        ALayout {
            bf16: self.bf16 * words,
            ..self
        }
    }
}

impl PackedA {
    /// Whether it holds `rows` rows of `layout` (what a GEMM of that many rows reads from
    /// it, checked before a GEMM reads A packed by others).
    pub(crate) fn holds(&self, layout: ALayout, rows: usize) -> bool {
        self.codes.len() >= rows * layout.codes
            && self.scale.len() >= rows * layout.scale
            && self.zp.len() >= rows * layout.zp
            && self.corr.len() >= rows * layout.corr
            && self.bf16.len() >= rows * layout.bf16
    }

    /// Its first `rows` rows of `layout`, as a view of exactly that length (grown if shorter).
    pub(crate) fn rows_mut(&mut self, layout: ALayout, rows: usize) -> PackedAMut<'_> {
        grow(&mut self.codes, rows * layout.codes, 0);
        grow(&mut self.scale, rows * layout.scale, 0.0);
        grow(&mut self.zp, rows * layout.zp, 0);
        grow(&mut self.corr, rows * layout.corr, 0.0);
        grow(&mut self.bf16, rows * layout.bf16, 0);
        PackedAMut {
            layout,
            codes: &mut self.codes[..rows * layout.codes],
            scale: &mut self.scale[..rows * layout.scale],
            zp: &mut self.zp[..rows * layout.zp],
            corr: &mut self.corr[..rows * layout.corr],
            bf16: &mut self.bf16[..rows * layout.bf16],
        }
    }
}

/// Rows of a [`PackedA`] to pack into, row 0 first: packing writes row `r` of its part at `r`
/// times the layout's length per row in each buffer.
#[derive(Debug)]
pub(crate) struct PackedAMut<'a> {
    layout: ALayout,
    pub(crate) codes: &'a mut [u8],
    pub(crate) scale: &'a mut [f32],
    pub(crate) zp: &'a mut [i32],
    pub(crate) corr: &'a mut [f32],
    pub(crate) bf16: &'a mut [u32],
}

impl<'a> PackedAMut<'a> {
    /// Rows `..at` and `at..`, as two views of disjoint elements. Panics if `at` is past the
    /// end.
    fn split_at_row(self, at: usize) -> (PackedAMut<'a>, PackedAMut<'a>) {
        let l = self.layout;
        let (c0, c1) = self.codes.split_at_mut(at * l.codes);
        let (s0, s1) = self.scale.split_at_mut(at * l.scale);
        let (z0, z1) = self.zp.split_at_mut(at * l.zp);
        let (r0, r1) = self.corr.split_at_mut(at * l.corr);
        let (b0, b1) = self.bf16.split_at_mut(at * l.bf16);
        let part = |codes, scale, zp, corr, bf16| PackedAMut {
            layout: l,
            codes,
            scale,
            zp,
            corr,
            bf16,
        };
        (part(c0, s0, z0, r0, b0), part(c1, s1, z1, r1, b1))
    }
}

/// Where a GEMM's packed A comes from.
pub(super) enum ASource<'s> {
    /// Packed block by block into this scratch.
    Own(&'s mut GemmScratch),
    /// Packed beforehand, all of it.
    Packed(&'s PackedA),
}

impl ASource<'_> {
    /// Panics unless A packed beforehand holds `rows` rows of `layout` (what the GEMM reads).
    pub(super) fn check(&self, layout: ALayout, rows: usize) {
        if let ASource::Packed(a) = self {
            assert!(a.holds(layout, rows), "gemm: A packed for fewer rows");
        }
    }
}

/// The buffers packing A goes through, per thread.
#[derive(Clone, Debug, Default)]
pub(crate) struct PackTmp {
    /// One micro-panel's rows of int8 codes, before they are interleaved (the reference's:
    /// one row's).
    pub(crate) row_u8: Vec<u8>,
    /// One row of A times the int8 weights' input scales.
    pub(crate) row_f32: Vec<f32>,
    /// One micro-panel's rows of bf16 pairs (or, for the widened kernels, of their values as
    /// f32), before they are interleaved.
    pub(crate) rows_bf16: Vec<u32>,
    /// The reference's per-group scales and zero points of one row.
    ref_scale: Vec<f32>,
    ref_zp: Vec<i32>,
}

/// The reference GEMM, the twin every microkernel is tested against. Float weights: f64
/// accumulation over the packed weights (f16 widened exactly). bf16: the same, over A rounded
/// by [`to_bf16`] as the bf16 kernels round it. int8: each row of A (or each
/// activation group of it) quantised by [`crate::quant::quantize_row_asym`] (after multiplying
/// it by the input scales, if any, in f32), exact integer sums of `(qa - zero) * qw` per group,
/// scaled by the group's scale and the weight scale in f64. Then
/// bias and epilogue in f64 (GELU through libm's erf).
pub fn gemm_ref(mut p: Gemm<'_>, scratch: &mut GemmScratch) {
    p.check();
    let (m, n, k) = (p.m(), p.n(), p.k);
    let (ldc, c) = (p.c.ld(), p.c.as_mut_ptr());
    // In the scratch, so that the scalar path allocates nothing either once it has grown.
    let tmp = &mut scratch.tmp;
    grow(&mut tmp.row_u8, k, 0);
    grow(&mut tmp.row_f32, k, 0.0);
    // Activation groups of the int8 weights: (size, count); per row, one group of all K.
    let (size, count) = match p.w {
        Weights::I8(PackedI8 {
            groups: Some(g), ..
        }) => (g.size, act_groups(k, g.size)),
        _ => (k.max(1), 1),
    };
    grow(&mut tmp.ref_scale, count, 0.0);
    grow(&mut tmp.ref_zp, count, 0);
    let row_q = &mut tmp.row_u8[..k];
    let scaled = &mut tmp.row_f32[..k];
    for i in 0..m {
        let row = &p.a[i * p.lda..i * p.lda + k];
        if let Weights::I8(w) = p.w {
            let row = match w.input_scale {
                Some(m) => {
                    for ((o, x), f) in scaled.iter_mut().zip(row).zip(m) {
                        *o = x * f;
                    }
                    &*scaled
                }
                None => row,
            };
            for (g, (src, dst)) in row.chunks(size).zip(row_q.chunks_mut(size)).enumerate() {
                let (s, z) = crate::quant::quantize_row_asym(src, dst);
                tmp.ref_scale[g] = s;
                tmp.ref_zp[g] = z;
            }
        }
        for j in 0..n {
            let mut acc = match p.w {
                Weights::F32(w) => float_dot(row, |kk| f64::from(w[packed_index(j, kk, k)])),
                Weights::F16(w) => float_dot(row, |kk| f64::from(w[packed_index(j, kk, k)])),
                Weights::Bf16(w) => row
                    .iter()
                    .enumerate()
                    .map(|(kk, &x)| {
                        let wv = f64::from(w[bf16::packed_index_bf16(j, kk, k)]);
                        f64::from(bf16::to_bf16(x)) * wv
                    })
                    .sum(),
                Weights::I8(w) => {
                    let groups = (0..k).step_by(size).enumerate();
                    let sum: f64 = groups
                        .map(|(g, start)| {
                            let zero = i64::from(tmp.ref_zp[g]);
                            let dot: i64 = (start..(start + size).min(k))
                                .map(|kk| {
                                    (i64::from(row_q[kk]) - zero)
                                        * i64::from(w.q[int8::packed_index_i8(j, kk, k)])
                                })
                                .sum();
                            dot as f64 * f64::from(tmp.ref_scale[g])
                        })
                        .sum();
                    sum * f64::from(w.scale[j])
                }
            };
            if let Some(b) = p.bias {
                acc += f64::from(b[j]);
            }
            acc = match p.epilogue {
                Epilogue::None => acc,
                Epilogue::Gelu => 0.5 * acc * (1.0 + libm::erf(acc / std::f64::consts::SQRT_2)),
                Epilogue::Residual { r, ld } => acc + f64::from(r[i * ld + j]),
            };
            // SAFETY: i < m and j < n, inside the view (`MatMut::new` checked its extent).
            unsafe { *c.add(i * ldc + j) = acc as f32 };
        }
    }
}

/// Index of float weight `(j, kk)` in the packed layout (K = `k`).
pub fn packed_index(j: usize, kk: usize, k: usize) -> usize {
    (j / PANEL) * PANEL * k + kk * PANEL + j % PANEL
}

/// Packed float weights (`n x k`) back to row-major f32 (f16 and bf16 widened exactly): what
/// re-packing them in another type starts from. `None` for int8 weights.
pub fn unpack_weights(w: Weights<'_>, n: usize, k: usize) -> Option<Vec<f32>> {
    let at = |j: usize, kk: usize| j * k + kk;
    let mut out = vec![0.0f32; n * k];
    match w {
        Weights::F32(p) => (0..n).for_each(|j| {
            (0..k).for_each(|kk| out[at(j, kk)] = p[packed_index(j, kk, k)]);
        }),
        Weights::F16(p) => (0..n).for_each(|j| {
            (0..k).for_each(|kk| out[at(j, kk)] = p[packed_index(j, kk, k)].to_f32());
        }),
        Weights::Bf16(p) => (0..n).for_each(|j| {
            (0..k).for_each(|kk| out[at(j, kk)] = p[bf16::packed_index_bf16(j, kk, k)].to_f32());
        }),
        Weights::I8(_) => return None,
    }
    Some(out)
}

/// The weights a GEMM driver's next NR slice (or next K range of it) will read, fetched into
/// L2 a part at a time while the current slice's micro-panels after the first run: the block's
/// first micro-panel streams a slice's weights from L3 or memory at the kernel's pace (int8:
/// 128 bytes per 16 multiply-adds), faster than the hardware prefetcher brings them, and
/// stalled on those loads for about a tenth of the bf16 GEMM's time in MiniLM (profile,
/// docs/KERNELS.md); the others read the slice from L1 or L2.
#[derive(Clone, Copy, Debug)]
pub(super) struct Prefetch {
    at: *const u8,
    lines: usize,
    parts: usize,
}

impl Prefetch {
    /// Nothing to fetch.
    pub(super) const NONE: Prefetch = Prefetch {
        at: std::ptr::null(),
        lines: 0,
        parts: 0,
    };

    /// Elements `start .. start + len` of `w` (clipped to it), in `micro_panels - 1` parts.
    pub(super) fn new<T>(w: &[T], start: usize, len: usize, micro_panels: usize) -> Prefetch {
        let end = start.saturating_add(len).min(w.len());
        if start >= end {
            return Prefetch::NONE;
        }
        let bytes = (end - start) * std::mem::size_of::<T>();
        Prefetch {
            at: w[start..].as_ptr().cast(),
            lines: bytes.div_ceil(64),
            // None with one micro-panel: there is no second to fetch before.
            parts: micro_panels.saturating_sub(1),
        }
    }

    /// The cache lines (from the first element's) that [`Prefetch::part`] fetches before
    /// micro-panel `q`: none for the first, then each part's share, every line once.
    fn lines(&self, q: usize) -> std::ops::Range<usize> {
        if q == 0 || q > self.parts {
            return 0..0;
        }
        self.lines * (q - 1) / self.parts..self.lines * q / self.parts
    }

    /// Before micro-panel `q` of the block: for `q >= 1`, part `q - 1`'s cache lines.
    #[inline(always)]
    pub(super) fn part(&self, q: usize) {
        for line in self.lines(q) {
            let p = self.at.wrapping_add(line * 64);
            // The last line may start inside the slice and end past it: a prefetch reads
            // nothing the program sees and does not fault.
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `prefetcht1` is a hint, valid on any address (SSE, part of x86-64).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.cast())
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = p;
        }
    }
}

/// Lengthens `v` to `len` with `fill` if it is shorter (a scratch buffer only grows).
pub(crate) fn grow<T: Copy>(v: &mut Vec<T>, len: usize, fill: T) {
    if v.len() < len {
        v.resize(len, fill);
    }
}

fn float_dot(row: &[f32], w: impl Fn(usize) -> f64) -> f64 {
    row.iter()
        .enumerate()
        .map(|(kk, &x)| f64::from(x) * w(kk))
        .sum()
}

/// The blocked float GEMM over the microkernel `MR x (NV * S::LANES)`, for weights of type
/// `E` (f32 or f16). With `TAIL` above 0 (and below MR), a block's last rows, where they
/// number at most TAIL, run as one tile of TAIL rows (a short text's few tokens). `S` must be
/// the ISA the caller runs on.
#[inline(always)]
pub(crate) unsafe fn gemm_float<
    S: Simd,
    E: Elem,
    const MR: usize,
    const NV: usize,
    const TAIL: usize,
>(
    mut p: Gemm<'_>,
    scratch: &mut GemmScratch,
) {
    p.check();
    let w = E::slice(&p.w).expect("gemm: the table routed other weights here");
    let nr = NV * S::LANES;
    debug_assert!(PANEL.is_multiple_of(nr));
    let (m, n, k) = (p.m(), p.n(), p.k);
    if m == 0 || n == 0 {
        return;
    }
    let mc_rows = MC.div_ceil(MR) * MR;
    let need = mc_rows * KC.min(k.max(1));
    if scratch.packed_a.len() < need {
        scratch.packed_a.resize(need, 0.0);
    }
    if E::WIDEN && scratch.widened.len() < PANEL * KC.min(k) {
        scratch.widened.resize(PANEL * KC.min(k), 0.0);
    }
    // Taken once from the unique view: every write to C goes through this pointer.
    let c_ptr = p.c.as_mut_ptr();
    // K = 0: C is the bias and epilogue alone; the microkernel handles it with kc = 0.
    // K blocks of equal size (at most KC), so that no block is a short remainder.
    let k_blocks = k.div_ceil(KC).max(1);
    let kc_step = k.div_ceil(k_blocks);
    for kb in 0..k_blocks {
        let pc = kb * kc_step;
        let kc = kc_step.min(k - pc.min(k));
        let first = kb == 0;
        let last = kb + 1 == k_blocks;
        for ic in (0..m).step_by(MC) {
            let mc = MC.min(m - ic);
            pack_a::<MR, TAIL>(&p.a[ic * p.lda..], p.lda, mc, pc, kc, &mut scratch.packed_a);
            // Half weights are widened in registers. With more than one micro-panel in the
            // block, the first widens its NR slice for the others too (storing it to scratch,
            // PANEL apart as in the packed layout), which read it as f32: the conversions cost
            // 1/(micro-panels) of what they would in every kernel, and overlap the first
            // micro-panel's FMAs rather than taking a pass of their own.
            let widen = E::WIDEN && mc > MR;
            // Where the NR slice at column `j` starts in its panel, from k = pc.
            let slice_at = |j: usize| (j / PANEL) * PANEL * k + pc * PANEL + j % PANEL;
            for jr in (0..n).step_by(nr) {
                let nc = nr.min(n - jr);
                let w_off = slice_at(jr);
                // The next slice's kc rows.
                let next = if jr + nr < n {
                    let len = (kc.max(1) - 1) * PANEL + nr;
                    Prefetch::new(w, slice_at(jr + nr), len, mc.div_ceil(MR))
                } else {
                    Prefetch::NONE
                };
                for ir in (0..mc).step_by(MR) {
                    next.part(ir / MR);
                    let row = ic + ir;
                    let out = p.tile_out(c_ptr, (row, jr), (MR.min(mc - ir), nc), first, last);
                    let a = scratch.packed_a[ir * kc..].as_ptr();
                    // Not sliced: with k = 0 there are no weights, and none are read.
                    let wp = w.as_ptr().wrapping_add(w_off);
                    let wide = scratch.widened.as_mut_ptr().wrapping_add(jr % PANEL);
                    let none = std::ptr::null_mut();
                    // SAFETY: `check` validated every size; the tile reads the packed A block
                    // (its micro-panel's MR or TAIL rows x kc from `ir * kc`), the weight slice
                    // (kc rows of PANEL from `w_off`, NR of each read) or the widened block (kc
                    // rows of PANEL, at least `PANEL * kc` values, at the same column), writes
                    // that block from the first micro-panel, and writes C at (row, jr) with
                    // mr x nc valid.
                    unsafe {
                        match (widen, ir, panel_height::<MR, TAIL>(ir, mc) == MR) {
                            (false, _, true) => {
                                kernel::run::<S, E, MR, NV, false>(kc, a, wp, none, &out)
                            }
                            (false, _, false) => {
                                kernel::run::<S, E, TAIL, NV, false>(kc, a, wp, none, &out)
                            }
                            // With more than MR rows the first micro-panel is a whole one.
                            (true, 0, _) => {
                                kernel::run::<S, E, MR, NV, true>(kc, a, wp, wide, &out)
                            }
                            (true, _, true) => {
                                kernel::run::<S, f32, MR, NV, false>(kc, a, wide, none, &out)
                            }
                            (true, _, false) => {
                                kernel::run::<S, f32, TAIL, NV, false>(kc, a, wide, none, &out)
                            }
                        }
                    };
                }
            }
        }
    }
}

/// Rows per thread below which [`gemm_par`] divides N instead of M: with fewer, a part would
/// reuse each weight micro-panel for too few micro-panels of A (8 at MR = 8) to pay for reading
/// all of W itself.
pub const MIN_ROWS_PER_PART: usize = 64;

/// The largest packed W (bytes) for which [`gemm_par`] divides M: every part reads all of W,
/// which must then stay in its core's L2 (1-2 MiB) next to the A block. Larger weights are
/// divided by N instead, each part streaming only its own panels. Measured on int8 at M = 128,
/// 2 threads: dividing M took K = N = 384 from 1.31x to 1.68x, but K = 3072, N = 768
/// (2.4 MB) from 1.71x to 1.47x.
pub const MAX_W_BYTES_FOR_ROWS: usize = 1 << 20;

/// Runs `p` through `kernels` on the threads of `pool`. With at least [`MIN_ROWS_PER_PART`]
/// rows per thread and weights of at most [`MAX_W_BYTES_FOR_ROWS`], M is divided: each thread
/// packs (for int8, quantises) only its own rows of A, so nothing is done twice. Otherwise the
/// weight panels (N) are divided: where the path has a [`SharedGemm`] for the weights (int8 and
/// bf16 off AMX) and A is large enough ([`MIN_SHARED_PACK`]), the parts pack A once between
/// them into the first scratch, a block of `MC` rows at a time, and each computes the block's
/// rows of its panels from it; else each part packs all of A itself. Either way every
/// element of C sees exactly the operations it would on one thread (a row's results do not
/// depend on the other rows; a part of N starts on a panel boundary, so the NR slices and K
/// blocks are the same), so results are bit-identical for any thread count. `scratch` holds
/// one scratch per thread (at most `scratch.len()` parts run).
pub fn gemm_par(
    kernels: &Kernels,
    p: Gemm<'_>,
    scratch: &mut [GemmScratch],
    pool: &rayon::ThreadPool,
) {
    p.check();
    let threads = scratch.len().min(pool.current_num_threads());
    let (m, panels) = (p.m(), p.n().div_ceil(PANEL));
    let w_bytes = match p.w {
        Weights::F32(w) => w.len() * 4,
        Weights::F16(w) => w.len() * 2,
        Weights::I8(w) => w.q.len(),
        Weights::Bf16(w) => w.len() * 2,
    };
    let (parts, axis) =
        if m >= MIN_ROWS_PER_PART * threads.max(2) && w_bytes <= MAX_W_BYTES_FOR_ROWS {
            (threads, Axis::Rows(m))
        } else {
            (threads.min(panels), Axis::Panels(panels))
        };
    let scratch = &mut scratch[..parts];
    match (parts, axis, kernels.shared(&p.w)) {
        (0, ..) => kernels.gemm(p, &mut GemmScratch::default()),
        (1, ..) => kernels.gemm(p, &mut scratch[0]),
        (_, Axis::Panels(panels), Some(s)) if shares_packing(&s, &p) => {
            pool.install(|| shared_run(s, p, scratch, panels))
        }
        _ => pool.install(|| split_run(kernels, p, scratch, axis)),
    }
}

/// A GEMM path in two stages, through which [`gemm_par`]'s threads share one packing of A
/// when they divide N: each packs some of a block of A's rows into the first scratch, then
/// each computes its part of N for the block's rows. Every element of C sees the operations
/// it would in one call of the path's GEMM (the packing of a row does not depend on the other
/// rows).
#[derive(Clone, Copy, Debug)]
pub struct SharedGemm {
    /// Rows per micro-panel of the packing, with activations per row and (int8) per group: a
    /// part packs whole micro-panels.
    pub(crate) mr: usize,
    pub(crate) mr_grouped: usize,
    /// Rows of the one micro-panel of a grouped GEMM of more than `mr_grouped` rows and at most
    /// this many (0: none; [`gemm_i8`]'s SMALL).
    pub(crate) mr_small: usize,
    /// u32 per pair of bf16 activations in the packing ([`crate::simd::DotBf16::A_WORDS`];
    /// 1 for int8, where it is not read).
    pub(crate) bf16_words: usize,
    /// Packs rows `rows` of A (from a micro-panel boundary) into the view, which starts at
    /// row `rows.start`.
    pub(crate) pack: fn(&Gemm<'_>, std::ops::Range<usize>, PackedAMut<'_>, &mut PackTmp),
    /// The GEMM over its A packed whole (by the parts' `pack`), with the part's own buffer
    /// for weights widened once per block (bf16 where `DotBf16::SPILL`; int8 needs none).
    pub(crate) compute: fn(Gemm<'_>, &PackedA, &mut Vec<f32>),
}

impl SharedGemm {
    /// The rows of a micro-panel for `p`.
    fn mr(&self, p: &Gemm<'_>) -> usize {
        match p.w {
            Weights::I8(PackedI8 {
                groups: Some(_), ..
            }) if int8::small_tile(p.m(), self.mr_grouped, self.mr_small) => self.mr_small,
            Weights::I8(PackedI8 {
                groups: Some(_), ..
            }) => self.mr_grouped,
            _ => self.mr,
        }
    }
}

/// Fewest values of A (M x K) for which [`gemm_par`]'s parts share its packing: about 3-5 us
/// of packing at 0.2-0.3 ns a value, of which a second part saves half, against the second
/// `rayon::join` that sharing costs (a few us). Below it (a few tokens), or with one
/// micro-panel of rows (which one part would pack alone), each part packs all of A.
pub const MIN_SHARED_PACK: usize = 16 * 1024;

/// Whether [`gemm_par`] shares the packing of `p`'s A between the parts of N.
fn shares_packing(s: &SharedGemm, p: &Gemm<'_>) -> bool {
    p.m() > s.mr(p) && p.m() * p.k >= MIN_SHARED_PACK
}

/// Runs `p` as `scratch.len()` parts of its `panels` weight panels (at least one each) over
/// one packing of A in the first scratch, a block of at most `MC` rows (whole micro-panels) at
/// a time, as the GEMM itself blocks M: the parts pack the block between them, whole
/// micro-panels each (or as many of them as there are micro-panels), then compute its rows.
/// So the shared A is at most an `MC`-row block, in cache for its products, whatever M is.
fn shared_run(s: SharedGemm, p: Gemm<'_>, scratch: &mut [GemmScratch], panels: usize) {
    let mr = s.mr(&p).max(1);
    let block = (MC / mr * mr).max(mr);
    let mut rest = p;
    while rest.m() > 0 {
        let rows = block.min(rest.m());
        let (top, bottom) = split_at_row(rest, rows);
        shared_block(s, top, scratch, panels);
        rest = bottom;
    }
}

/// [`shared_run`] for one block of rows, in micro-panels of the rows the block's own M takes
/// (a last block of a few rows may take a small tile's: [`gemm_i8`]'s SMALL).
fn shared_block(s: SharedGemm, p: Gemm<'_>, scratch: &mut [GemmScratch], panels: usize) {
    let mr = s.mr(&p).max(1);
    let units = p.m().div_ceil(mr);
    let packers = scratch.len().min(units);
    let Some((first, rest)) = scratch.split_first_mut() else {
        return;
    };
    if packers == 0 {
        // No rows: nothing to pack, and C has no elements.
        return;
    }
    let GemmScratch {
        a, tmp, widened, ..
    } = first;
    let out = a.rows_mut(ALayout::of(&p).bf16_words(s.bf16_words), units * mr);
    split_pack(s, &p, 0..units, mr, out, tmp, &mut rest[..packers - 1]);
    split_compute(s, p, a, panels, widened, rest);
}

/// Packs micro-panels `units` of A (of `mr` rows) into `out` (which starts at the first) as
/// `1 + rest.len()` parts, halving with `rayon::join`: the first part through `head`, each
/// other through a scratch of `rest`.
fn split_pack(
    s: SharedGemm,
    p: &Gemm<'_>,
    units: std::ops::Range<usize>,
    mr: usize,
    out: PackedAMut<'_>,
    head: &mut PackTmp,
    rest: &mut [GemmScratch],
) {
    let parts = 1 + rest.len();
    if parts == 1 {
        let rows = units.start * mr..(units.end * mr).min(p.m());
        return (s.pack)(p, rows, out, head);
    }
    let left = parts / 2;
    let at = units.start + units.len() * left / parts;
    let (lo, ro) = out.split_at_row((at - units.start) * mr);
    let (lrest, rrest) = rest.split_at_mut(left - 1);
    match rrest.split_first_mut() {
        Some((rhead, rrest)) => {
            rayon::join(
                || split_pack(s, p, units.start..at, mr, lo, head, lrest),
                || split_pack(s, p, at..units.end, mr, ro, &mut rhead.tmp, rrest),
            );
        }
        // Not reached (the right half has parts - left >= 1 parts); packed in turn if it were.
        None => {
            split_pack(s, p, units.start..at, mr, lo, head, lrest);
            split_pack(s, p, at..units.end, mr, ro, head, &mut []);
        }
    }
}

/// Runs `p` over the packed `a` as `1 + rest.len()` parts of its `panels` weight panels (at
/// least one each), halving with `rayon::join`: the first part with `head` for its widened
/// weights, each other with a scratch of `rest`'s.
fn split_compute(
    s: SharedGemm,
    p: Gemm<'_>,
    a: &PackedA,
    panels: usize,
    head: &mut Vec<f32>,
    rest: &mut [GemmScratch],
) {
    let parts = 1 + rest.len();
    let left = parts / 2;
    let (lrest, rrest) = rest.split_at_mut(left.saturating_sub(1));
    let Some((rhead, rrest)) = rrest.split_first_mut() else {
        return (s.compute)(p, a, head);
    };
    let at = panels * left / parts;
    let (l, r) = split_at_panel(p, at);
    rayon::join(
        || split_compute(s, l, a, at, head, lrest),
        || split_compute(s, r, a, panels - at, &mut rhead.widened, rrest),
    );
}

/// What [`split_run`] divides, and how much of it there is.
#[derive(Clone, Copy)]
enum Axis {
    Rows(usize),
    Panels(usize),
}

/// Runs `p` as `scratch.len()` parts of `axis` (at least one unit per part), halving with
/// `rayon::join` (stack jobs: no allocation per call).
fn split_run(kernels: &Kernels, p: Gemm<'_>, scratch: &mut [GemmScratch], axis: Axis) {
    let parts = scratch.len();
    if parts == 1 {
        return kernels.gemm(p, &mut scratch[0]);
    }
    // Proportional halves; with units >= parts, each side keeps at least one unit per part.
    let left_parts = parts / 2;
    let (left, right, la, ra) = match axis {
        Axis::Rows(rows) => {
            let at = rows * left_parts / parts;
            let (l, r) = split_at_row(p, at);
            (l, r, Axis::Rows(at), Axis::Rows(rows - at))
        }
        Axis::Panels(panels) => {
            let at = panels * left_parts / parts;
            let (l, r) = split_at_panel(p, at);
            (l, r, Axis::Panels(at), Axis::Panels(panels - at))
        }
    };
    let (ls, rs) = scratch.split_at_mut(left_parts);
    rayon::join(
        || split_run(kernels, left, ls, la),
        || split_run(kernels, right, rs, ra),
    );
}

/// Divides a GEMM into rows `..at` and the rest.
fn split_at_row(p: Gemm<'_>, at: usize) -> (Gemm<'_>, Gemm<'_>) {
    let (c_top, c_bottom) = p.c.split_rows(at);
    let (a_top, a_bottom) = p.a.split_at((at * p.lda).min(p.a.len()));
    let (e_top, e_bottom) = match p.epilogue {
        Epilogue::Residual { r, ld } => {
            let (t, b) = r.split_at((at * ld).min(r.len()));
            (
                Epilogue::Residual { r: t, ld },
                Epilogue::Residual { r: b, ld },
            )
        }
        e => (e, e),
    };
    let part = |a, epilogue, c| Gemm {
        k: p.k,
        a,
        lda: p.lda,
        w: p.w,
        bias: p.bias,
        epilogue,
        c,
    };
    (
        part(a_top, e_top, c_top),
        part(a_bottom, e_bottom, c_bottom),
    )
}

/// Divides a GEMM into the columns before weight panel `at` and the rest.
fn split_at_panel(p: Gemm<'_>, at: usize) -> (Gemm<'_>, Gemm<'_>) {
    let (n, k) = (p.n(), p.k);
    let col = (at * PANEL).min(n);
    let (c_left, c_right) = p.c.split_cols(col);
    let (w_left, w_right) = p.w.split_at_panel(at, n, k);
    let (b_left, b_right) = match p.bias {
        Some(b) => {
            let (l, r) = b.split_at(col);
            (Some(l), Some(r))
        }
        None => (None, None),
    };
    let e_right = match p.epilogue {
        Epilogue::Residual { r, ld } => Epilogue::Residual { r: &r[col..], ld },
        e => e,
    };
    let part = |w, bias, epilogue, c| Gemm {
        k,
        a: p.a,
        lda: p.lda,
        w,
        bias,
        epilogue,
        c,
    };
    (
        part(w_left, b_left, p.epilogue, c_left),
        part(w_right, b_right, e_right, c_right),
    )
}

/// Interleaves MR rows of A, packed (`block`, rows of equal length, whole words of `W`
/// elements), into a micro-panel: for each word, that word of each row in turn. The loop
/// writes the panel in order, one word of all MR rows at a time, so that the compiler does
/// not turn it into scatters (it did for a loop over one row, at about one cycle per word).
#[inline(always)]
pub(super) fn interleave<T: Copy, const MR: usize, const W: usize>(block: &[T], panel: &mut [T]) {
    let len = block.len() / MR;
    let rows: [&[T]; MR] = std::array::from_fn(|r| &block[r * len..(r + 1) * len]);
    for (g, dst) in panel.chunks_exact_mut(MR * W).enumerate() {
        for (d, row) in dst.chunks_exact_mut(W).zip(rows) {
            d.copy_from_slice(&row[g * W..g * W + W]);
        }
    }
}

/// The rows that a block of `mc` rows of A takes packed in micro-panels of MR rows: `mc`
/// rounded up to a whole panel, but where the last panel would hold 1 to `TAIL` rows (`TAIL`
/// above 0 and below MR), a panel of TAIL rows instead. The panels start at multiples of MR
/// either way.
pub(super) const fn panel_rows<const MR: usize, const TAIL: usize>(mc: usize) -> usize {
    let rest = mc % MR;
    if 0 < TAIL && TAIL < MR && rest > 0 && rest <= TAIL {
        mc - rest + TAIL
    } else {
        mc.div_ceil(MR) * MR
    }
}

/// The rows of the micro-panel that starts at row `ir` (a multiple of MR) of a block of `mc`
/// rows, as [`panel_rows`] lays them out: TAIL for a last panel of at most TAIL rows, else MR.
#[inline(always)]
pub(super) const fn panel_height<const MR: usize, const TAIL: usize>(
    ir: usize,
    mc: usize,
) -> usize {
    if 0 < TAIL && TAIL < MR && mc - ir <= TAIL {
        TAIL
    } else {
        MR
    }
}

/// Packs `mc` rows of A (columns `pc .. pc + kc`) into MR-row micro-panels, the last of TAIL
/// rows where [`panel_rows`] says: panel `q` holds, for each k, the values of its rows from
/// `q*MR` (zero past `mc`).
fn pack_a<const MR: usize, const TAIL: usize>(
    a: &[f32],
    lda: usize,
    mc: usize,
    pc: usize,
    kc: usize,
    out: &mut [f32],
) {
    for q in 0..mc.div_ceil(MR) {
        let (a, rows) = (&a[q * MR * lda..], mc - q * MR);
        let at = q * MR * kc;
        // The height a constant, so that the loops compile to fixed strides.
        if panel_height::<MR, TAIL>(q * MR, mc) == MR {
            pack_panel::<MR>(a, lda, rows, pc, kc, &mut out[at..at + MR * kc]);
        } else {
            pack_panel::<TAIL>(a, lda, rows, pc, kc, &mut out[at..at + TAIL * kc]);
        }
    }
}

/// One micro-panel of [`pack_a`]: H rows of `a` (those past `rows` as zeros), interleaved.
#[inline(always)]
fn pack_panel<const H: usize>(
    a: &[f32],
    lda: usize,
    rows: usize,
    pc: usize,
    kc: usize,
    dst: &mut [f32],
) {
    for r in 0..H {
        if r < rows {
            let src = &a[r * lda + pc..r * lda + pc + kc];
            for (kk, &v) in src.iter().enumerate() {
                dst[kk * H + r] = v;
            }
        } else {
            for kk in 0..kc {
                dst[kk * H + r] = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Prefetch;

    /// A prefetch covers its range, clipped to the weights, once: each cache line in exactly
    /// one part, the parts in order over micro-panels 1 .. (none before the first or after
    /// the last), starting at the range's first element; and nothing without a second
    /// micro-panel or past the weights' end.
    #[test]
    fn prefetch_parts_cover_the_range_once() {
        let w = vec![0u16; 1000];
        for (start, len, panels) in [
            (0, 1000, 16),
            (10, 37, 3),
            (990, 100, 5),
            (0, 1000, 200),
            (5, 64, 2),
        ] {
            let p = Prefetch::new(&w, start, len, panels);
            let bytes = ((start + len).min(w.len()) - start) * 2;
            assert_eq!(p.at, w[start..].as_ptr().cast(), "{start} {len} {panels}");
            assert!(p.lines(0).is_empty());
            let mut next = 0;
            for q in 1..panels {
                let r = p.lines(q);
                assert_eq!(r.start, next, "{start} {len} {panels} at {q}");
                next = r.end;
            }
            assert_eq!(next, bytes.div_ceil(64), "{start} {len} {panels}");
            assert!(p.lines(panels).is_empty());
        }
        for p in [
            Prefetch::new(&w, 0, 1000, 1),
            Prefetch::new(&w, 1000, 5, 8),
            Prefetch::new(&w, 7, 0, 8),
            Prefetch::new::<u16>(&[], 0, 64, 8),
        ] {
            assert!((0..10).all(|q| p.lines(q).is_empty()));
            p.part(1);
        }
    }
}
