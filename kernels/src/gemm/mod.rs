//! f32 GEMM: `C = A * W^T (+ bias) (+ epilogue)`, A the activations (`M x K`, row stride
//! `lda`), W the weights (`N x K`, PyTorch's `[out_features, in_features]`), pre-packed by
//! [`pack_weights`] into the layout the microkernels read.
//!
//! BLIS structure (docs/KERNELS.md, "GEMM"):
//!
//! ```text
//! LOOP 5  threads take disjoint ranges of weight panels (N)
//! LOOP 4    for each KC block of K
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
//!
//! Every C element is computed by the same sequence of operations whatever the thread count or
//! the split, so results are bit-identical across thread counts.

mod kernel;

use crate::simd::Simd;

/// Columns per packed weight panel. A multiple of every microkernel's NR (32 on AVX-512, 16 on
/// AVX2 and NEON), so one packed layout serves every ISA.
pub const PANEL: usize = 32;
/// K block (see the module docs for the derivation).
pub const KC: usize = 768;
/// M block (see the module docs for the derivation).
pub const MC: usize = 256;

/// Packs row-major weights `w` (`n x k`) into panels of [`PANEL`] output channels: panel `p`
/// holds, for each `k` in order, the weights of channels `p*32 .. p*32+32` (zero past `n`).
/// Element `(n, k)` is at `(n / 32) * 32 * k_total + k * 32 + n % 32`.
pub fn pack_weights(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(w.len(), n * k, "pack_weights: w is not n x k");
    let panels = n.div_ceil(PANEL);
    let mut out = vec![0.0f32; panels * PANEL * k];
    for (row, wr) in w.chunks_exact(k.max(1)).enumerate().take(n) {
        let (p, col) = (row / PANEL, row % PANEL);
        let base = p * PANEL * k;
        for (kk, &v) in wr.iter().enumerate() {
            out[base + kk * PANEL + col] = v;
        }
    }
    out
}

/// The length of the packed form of `n x k` weights.
pub fn packed_len(n: usize, k: usize) -> usize {
    n.div_ceil(PANEL) * PANEL * k
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
pub struct GemmF32<'a> {
    pub k: usize,
    /// `M x K`, row stride `lda >= k`.
    pub a: &'a [f32],
    pub lda: usize,
    /// Weights packed by [`pack_weights`] (`packed_len(N, k)` elements).
    pub w: &'a [f32],
    /// `N` elements, or none.
    pub bias: Option<&'a [f32]>,
    pub epilogue: Epilogue<'a>,
    /// The `M x N` output; only its elements are written.
    pub c: MatMut<'a>,
}

impl GemmF32<'_> {
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
        assert_eq!(
            self.w.len(),
            packed_len(n, k),
            "gemm: w is not packed n x k"
        );
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
}

/// The reference GEMM: f64 accumulation over the packed weights, then bias and epilogue in f64
/// (GELU through libm's erf). The twin every microkernel is tested against.
pub fn gemm_f32_ref(mut p: GemmF32<'_>, _scratch: &mut GemmScratch) {
    p.check();
    let (m, n, k) = (p.m(), p.n(), p.k);
    let (ldc, c) = (p.c.ld(), p.c.as_mut_ptr());
    for i in 0..m {
        for j in 0..n {
            let base = (j / PANEL) * PANEL * k + j % PANEL;
            let mut acc = 0.0f64;
            for kk in 0..k {
                acc += f64::from(p.a[i * p.lda + kk]) * f64::from(p.w[base + kk * PANEL]);
            }
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

/// The blocked GEMM over the microkernel `MR x (NV * S::LANES)`. `S` must be the ISA the
/// caller runs on.
#[inline(always)]
pub(crate) unsafe fn gemm_f32<S: Simd, const MR: usize, const NV: usize>(
    mut p: GemmF32<'_>,
    scratch: &mut GemmScratch,
) {
    p.check();
    let nr = NV * S::LANES;
    debug_assert!(PANEL.is_multiple_of(nr));
    let (m, n, k) = (p.m(), p.n(), p.k);
    if m == 0 || n == 0 {
        return;
    }
    let ldc = p.c.ld();
    let mc_rows = MC.div_ceil(MR) * MR;
    let need = mc_rows * KC.min(k.max(1));
    if scratch.packed_a.len() < need {
        scratch.packed_a.resize(need, 0.0);
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
            pack_a::<MR>(&p.a[ic * p.lda..], p.lda, mc, pc, kc, &mut scratch.packed_a);
            for jr in (0..n).step_by(nr) {
                let nc = nr.min(n - jr);
                // The NR slice of its panel, from k = pc.
                let w_off = (jr / PANEL) * PANEL * k + pc * PANEL + jr % PANEL;
                for ir in (0..mc).step_by(MR) {
                    let row = ic + ir;
                    let tile = kernel::Tile {
                        kc,
                        a: scratch.packed_a[ir * kc..].as_ptr(),
                        // Not sliced: with k = 0 there are no weights, and none are read.
                        w: p.w.as_ptr().wrapping_add(w_off),
                        first,
                        last,
                        // SAFETY: row < m and jr < n, so the offset is inside the view.
                        c: unsafe { c_ptr.add(row * ldc + jr) },
                        ldc,
                        mr: MR.min(mc - ir),
                        nc,
                        bias: p.bias.map(|b| &b[jr..]),
                        epilogue: match p.epilogue {
                            Epilogue::Residual { r, ld } => Epilogue::Residual {
                                r: &r[row * ld + jr..],
                                ld,
                            },
                            e => e,
                        },
                    };
                    // SAFETY: `check` validated every size; the tile points into the packed A
                    // block (MR x kc from `ir * kc`), the weight slice (kc rows of PANEL from
                    // `w_off`, NR of each read) and C at (row, jr) with mr x nc valid.
                    unsafe { kernel::run::<S, MR, NV>(&tile) };
                }
            }
        }
    }
}

/// Runs `kernel` (a table's `gemm_f32`) on the threads of `pool`: the weight panels (N) are
/// divided into one contiguous range per thread, each a GEMM of its own on disjoint columns of
/// C. Every element sees exactly the operations it would on one thread (each part starts on a
/// panel boundary, so the NR slices and K blocks are the same), so results are bit-identical
/// for any thread count. `scratch` holds one scratch per thread (at most `scratch.len()` parts
/// run).
pub fn gemm_f32_par(
    kernel: fn(GemmF32<'_>, &mut GemmScratch),
    p: GemmF32<'_>,
    scratch: &mut [GemmScratch],
    pool: &rayon::ThreadPool,
) {
    p.check();
    let panels = p.n().div_ceil(PANEL);
    let parts = scratch.len().min(pool.current_num_threads()).min(panels);
    match parts {
        0 => kernel(p, &mut GemmScratch::default()),
        1 => kernel(p, &mut scratch[0]),
        _ => pool.install(|| split_run(kernel, p, &mut scratch[..parts], panels)),
    }
}

/// Runs `p` (`panels` weight panels, at least `scratch.len()`) as `scratch.len()` parts,
/// halving with `rayon::join` (stack jobs: no allocation per call).
fn split_run(
    kernel: fn(GemmF32<'_>, &mut GemmScratch),
    p: GemmF32<'_>,
    scratch: &mut [GemmScratch],
    panels: usize,
) {
    let parts = scratch.len();
    if parts == 1 {
        return kernel(p, &mut scratch[0]);
    }
    // Proportional halves; with panels >= parts, each side keeps at least one panel per part.
    let left_parts = parts / 2;
    let left_panels = panels * left_parts / parts;
    let (left, right) = split_at_panel(p, left_panels);
    let (ls, rs) = scratch.split_at_mut(left_parts);
    rayon::join(
        || split_run(kernel, left, ls, left_panels),
        || split_run(kernel, right, rs, panels - left_panels),
    );
}

/// Divides a GEMM into the columns before weight panel `at` and the rest.
fn split_at_panel(p: GemmF32<'_>, at: usize) -> (GemmF32<'_>, GemmF32<'_>) {
    let (n, k) = (p.n(), p.k);
    let col = (at * PANEL).min(n);
    let (c_left, c_right) = p.c.split_cols(col);
    let (w_left, w_right) = p.w.split_at(at * PANEL * k);
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
    let part = |w, bias, epilogue, c| GemmF32 {
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

/// Packs `mc` rows of A (columns `pc .. pc + kc`) into MR-row micro-panels: panel `q` holds,
/// for each k, the MR values of rows `q*MR ..` (zero past `mc`).
fn pack_a<const MR: usize>(
    a: &[f32],
    lda: usize,
    mc: usize,
    pc: usize,
    kc: usize,
    out: &mut [f32],
) {
    for q in 0..mc.div_ceil(MR) {
        let dst = &mut out[q * MR * kc..(q + 1) * MR * kc];
        for r in 0..MR {
            let row = q * MR + r;
            if row < mc {
                let src = &a[row * lda + pc..row * lda + pc + kc];
                for (kk, &v) in src.iter().enumerate() {
                    dst[kk * MR + r] = v;
                }
            } else {
                for kk in 0..kc {
                    dst[kk * MR + r] = 0.0;
                }
            }
        }
    }
}
