//! The int8 and bf16 GEMMs on Intel AMX tiles (`tdpbusd`, `tdpbf16ps`), for CPUs where
//! [`crate::amx::support`] says the tiles may be used.
//!
//! Tiles (palette 1) are 16 rows of 64 bytes. Eight of them make one 32 x 32 block of C:
//!
//! ```text
//! tmm4, tmm5  A: rows 0..16 and 16..32 of the block, 64 bytes of K (64 int8 or 32 bf16 k)
//! tmm6, tmm7  B: channels 0..16 and 16..32 of a weight panel, the same K
//! tmm0..tmm3  C: the four 16 x 16 products, i32 (int8) or f32 (bf16)
//! ```
//!
//! B needs no packing of its own: a tile's row is 16 channels x 4 bytes (one group of 4 int8 k,
//! or one pair of bf16 k), which is exactly half of a group's 128 bytes in the int8 and bf16
//! panels every other path reads (docs/KERNELS.md): `tileloadd` reads it in place with a
//! stride of 128 bytes. So a file converted for any CPU runs on the tiles without repacking,
//! and a file converted here runs everywhere. A is quantised (int8) or rounded (bf16) once per
//! block of MC rows into row-major rows, K contiguous, which is the A tile's layout.
//!
//! After the K loop the C tiles go to a 32 x 32 buffer on the stack, where the AVX-512
//! epilogue of the other int8 and bf16 paths takes over: the zero-point correction and scales
//! (int8), then bias, GELU or residual, by the same operations in the same order, so the int8
//! results are bit-identical to AVX-512 VNNI's. With activation groups, each group's K is one
//! run of the tiles and one conversion into f32 accumulators, as in the VNNI kernel.
//!
//! Shapes the tiles cannot take or do not pay on go to the AVX-512 kernels: K not a multiple
//! of 64 (int8; 32 for bf16), activation groups not a multiple of 64, and fewer than
//! [`AMX_MIN_ROWS_I8`] / [`AMX_MIN_ROWS_BF16`] rows.

use std::arch::asm;
use std::arch::x86_64::*;

use super::int8::{act_groups, gemm_i8_packed, pack_a_i8, pack_i8, AOrder};
use super::{
    bf16, gemm_bf16, gemm_i8, grow, kernel, ALayout, ASource, Gemm, GemmScratch, PackTmp, PackedA,
    PackedAMut, Weights, MC, PANEL,
};
use crate::simd::avx512::{Avx512, Avx512Bf16, Avx512Vnni};
use crate::simd::{DotBf16, DotI8, Simd};
use crate::tiles::{Tiles, TILE_ROWS};

/// The AVX-512 VNNI int8 path's tile shapes ([`gemm_i8`]'s MR, NV, MRG, SMALL and TAIL), which
/// its dispatch entry and these drivers' fallback share, so that both pack A alike: 8 x 32 per
/// row, 4 x 32 per group (alternate steps in two sets of accumulators), one 8 x 32 tile for a
/// grouped GEMM of 5 to 8 rows (f32 sums in memory), 4 x 32 for a block's last 1 to 4 rows
/// per row.
pub(crate) const VNNI_MR: usize = 8;
pub(crate) const VNNI_NV: usize = 2;
pub(crate) const VNNI_MRG: usize = 4;
pub(crate) const VNNI_SMALL: usize = 8;
pub(crate) const VNNI_TAIL: usize = 4;

/// Fewest rows (M) for which the int8 GEMM runs on the tiles; below, AVX-512 VNNI.
pub const AMX_MIN_ROWS_I8: usize = 16;
/// Fewest rows (M) for which the bf16 GEMM runs on the tiles; below, AVX-512 BF16.
pub const AMX_MIN_ROWS_BF16: usize = 1;

/// The row thresholds in force, (int8, bf16): the constants above, or both set by
/// [`crate::isa::AMX_ROWS_ENV`]. Read once.
pub fn amx_min_rows() -> Result<(usize, usize), crate::IsaError> {
    static ROWS: std::sync::OnceLock<Result<(usize, usize), crate::IsaError>> =
        std::sync::OnceLock::new();
    ROWS.get_or_init(|| {
        let value = std::env::var(crate::isa::AMX_ROWS_ENV).ok();
        min_rows_from(value.as_deref())
    })
    .clone()
}

/// The thresholds for a value of [`crate::isa::AMX_ROWS_ENV`] (none or blank: the constants).
fn min_rows_from(value: Option<&str>) -> Result<(usize, usize), crate::IsaError> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok((AMX_MIN_ROWS_I8, AMX_MIN_ROWS_BF16)),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(rows) => Ok((rows, rows)),
            Err(_) => Err(crate::IsaError::AmxRows {
                value: v.to_owned(),
            }),
        },
    }
}

/// Bytes of K in one tile row (one step of the K loop).
const CHUNK: usize = 64;
/// Bytes between rows of a B tile: one group of 4 int8 k (or pair of bf16 k) of a 32-channel
/// panel.
const B_STRIDE: usize = PANEL * 4;
/// Bytes between rows of the C buffer: 32 lanes of 4 bytes.
const C_STRIDE: usize = PANEL * 4;

/// The 32 x 32 block of C as the tiles store it: row `r` at `r * 32` (i32 or f32 bits).
#[repr(C, align(64))]
pub(crate) struct Block([u32; PANEL * 2 * TILE_ROWS]);

impl Block {
    pub(crate) const ZERO: Block = Block([0; PANEL * 2 * TILE_ROWS]);
}

/// Defines a tile loop over `$op` (`tdpbusd` or `tdpbf16ps`): `chunks` steps of 64 bytes of
/// K into zeroed C tiles, stored to the block. `$two`: rows 16..32 too (tmm5, tmm2, tmm3).
macro_rules! tile_loop {
    ($name:ident, $op:literal, two) => {
        /// 32 rows x 32 channels: `chunks` (>= 1) steps of K from `a` (rows `lda` bytes
        /// apart) and `b` (a weight panel's groups, 128 bytes apart), into `c`. Safety: tiles
        /// configured; `a` valid for 32 rows of `chunks * 64` bytes, `b` for `chunks * 16`
        /// groups of 128 bytes.
        #[inline(always)]
        unsafe fn $name(chunks: usize, a: *const u8, lda: usize, b: *const u8, c: &mut Block) {
            debug_assert!(chunks > 0);
            let c0 = c.0.as_mut_ptr();
            // SAFETY: the contract above; the loop reads A rows `r * lda .. + chunks * 64`
            // for r < 32 and B groups `g * 128 .. + 128` for g < chunks * 16, and writes the
            // 32 x 128 bytes of `c`. Tiles 0..8 are configured 16 x 64 bytes.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    // B: channels 0..16 and 16..32 of the panel, 16 groups (rows) of K.
                    "tileloadd tmm6, [{b} + {ldb}*1]",
                    "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
                    // A: rows 0..16, 64 bytes of K each.
                    "tileloadd tmm4, [{a} + {lda}*1]",
                    concat!($op, " tmm0, tmm4, tmm6"),
                    concat!($op, " tmm1, tmm4, tmm7"),
                    // A: rows 16..32.
                    "tileloadd tmm5, [{a2} + {lda}*1]",
                    concat!($op, " tmm2, tmm5, tmm6"),
                    concat!($op, " tmm3, tmm5, tmm7"),
                    // Next 64 bytes of K: along A's rows, 16 groups down the panel.
                    "add {a}, 64",
                    "add {a2}, 64",
                    "add {b}, {bstep}",
                    "dec {n}",
                    "jnz 2b",
                    // C rows 0..16 (channels 0..16, 16..32), then rows 16..32.
                    "tilestored [{c} + {ldc}*1], tmm0",
                    "tilestored [{c} + {ldc}*1 + 64], tmm1",
                    "tilestored [{c2} + {ldc}*1], tmm2",
                    "tilestored [{c2} + {ldc}*1 + 64], tmm3",
                    a = inout(reg) a => _,
                    a2 = inout(reg) a.wrapping_add(TILE_ROWS * lda) => _,
                    b = inout(reg) b => _,
                    n = inout(reg) chunks => _,
                    lda = in(reg) lda,
                    ldb = in(reg) B_STRIDE,
                    bstep = const TILE_ROWS * B_STRIDE,
                    c = in(reg) c0,
                    c2 = in(reg) c0.wrapping_add(TILE_ROWS * PANEL),
                    ldc = in(reg) C_STRIDE,
                    options(nostack)
                )
            };
        }
    };
    ($name:ident, $op:literal, one) => {
        /// [`tile_loop`]'s 16-row form: rows 0..16 of the block only (tmm0, tmm1); rows
        /// 16..32 of `c` are left as they were. Safety: as the 32-row form, with 16 rows of A.
        #[inline(always)]
        unsafe fn $name(chunks: usize, a: *const u8, lda: usize, b: *const u8, c: &mut Block) {
            debug_assert!(chunks > 0);
            // SAFETY: as the 32-row form, reading 16 rows of A and writing 16 rows of `c`.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "2:",
                    "tileloadd tmm6, [{b} + {ldb}*1]",
                    "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
                    "tileloadd tmm4, [{a} + {lda}*1]",
                    concat!($op, " tmm0, tmm4, tmm6"),
                    concat!($op, " tmm1, tmm4, tmm7"),
                    "add {a}, 64",
                    "add {b}, {bstep}",
                    "dec {n}",
                    "jnz 2b",
                    "tilestored [{c} + {ldc}*1], tmm0",
                    "tilestored [{c} + {ldc}*1 + 64], tmm1",
                    a = inout(reg) a => _,
                    b = inout(reg) b => _,
                    n = inout(reg) chunks => _,
                    lda = in(reg) lda,
                    ldb = in(reg) B_STRIDE,
                    bstep = const TILE_ROWS * B_STRIDE,
                    c = in(reg) c.0.as_mut_ptr(),
                    ldc = in(reg) C_STRIDE,
                    options(nostack)
                )
            };
        }
    };
}

tile_loop!(dpbusd_32, "tdpbusd", two);
tile_loop!(dpbusd_16, "tdpbusd", one);
tile_loop!(dpbf16_32, "tdpbf16ps", two);
tile_loop!(dpbf16_16, "tdpbf16ps", one);

/// Where a block's A tiles are: rows 0..16 from `a`, rows 16..32 from `a2`, rows `lda` bytes
/// apart, each step of 64 bytes of K `step` bytes further on. A in rows
/// ([`AOrder::Rows`]): `a2 = a + 16 lda`, `step = 64`; in tiles ([`AOrder::Tiles`]): `lda =
/// 64`, `step = 1024`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ATiles {
    pub(crate) a: *const u8,
    pub(crate) a2: *const u8,
    pub(crate) lda: usize,
    pub(crate) step: usize,
}

/// Defines [`tile_loop`]'s loops over A's tiles anywhere ([`ATiles`]), for A in tile order:
/// the same instructions in the same order, with the step along A in a register.
macro_rules! general_tile_loop {
    ($name:ident, $op:literal, two) => {
        /// 32 rows x 32 channels: `chunks` (>= 1) steps of K from A's tiles at `a` and from
        /// `b` (a weight panel's groups, 128 bytes apart), into `c`. Safety: tiles configured;
        /// `a` valid for 16 rows from each of `a.a` and `a.a2` at each of `chunks` steps, `b`
        /// for `chunks * 16` groups of 128 bytes.
        #[inline(always)]
        unsafe fn $name(chunks: usize, a: ATiles, b: *const u8, c: &mut Block) {
            debug_assert!(chunks > 0);
            let c0 = c.0.as_mut_ptr();
            // SAFETY: the contract above; the loop reads A rows `r * lda + s * step .. + 64`
            // from `a.a` and `a.a2` for r < 16 and s < chunks, B groups `g * 128 .. + 128` for
            // g < chunks * 16, and writes the 32 x 128 bytes of `c`. Tiles 0..8 are configured
            // 16 x 64 bytes.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    // B: channels 0..16 and 16..32 of the panel, 16 groups (rows) of K.
                    "tileloadd tmm6, [{b} + {ldb}*1]",
                    "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
                    // A: rows 0..16 of this step's tile, and their products.
                    "tileloadd tmm4, [{a} + {lda}*1]",
                    concat!($op, " tmm0, tmm4, tmm6"),
                    concat!($op, " tmm1, tmm4, tmm7"),
                    // A: rows 16..32.
                    "tileloadd tmm5, [{a2} + {lda}*1]",
                    concat!($op, " tmm2, tmm5, tmm6"),
                    concat!($op, " tmm3, tmm5, tmm7"),
                    // Next 64 bytes of K: A's next tiles, 16 groups down the panel.
                    "add {a}, {step}",
                    "add {a2}, {step}",
                    "add {b}, {bstep}",
                    "dec {n}",
                    "jnz 2b",
                    "tilestored [{c} + {ldc}*1], tmm0",
                    "tilestored [{c} + {ldc}*1 + 64], tmm1",
                    "tilestored [{c2} + {ldc}*1], tmm2",
                    "tilestored [{c2} + {ldc}*1 + 64], tmm3",
                    a = inout(reg) a.a => _,
                    a2 = inout(reg) a.a2 => _,
                    b = inout(reg) b => _,
                    n = inout(reg) chunks => _,
                    lda = in(reg) a.lda,
                    step = in(reg) a.step,
                    ldb = in(reg) B_STRIDE,
                    bstep = const TILE_ROWS * B_STRIDE,
                    c = in(reg) c0,
                    c2 = in(reg) c0.wrapping_add(TILE_ROWS * PANEL),
                    ldc = in(reg) C_STRIDE,
                    options(nostack)
                )
            };
        }
    };
    ($name:ident, $op:literal, one) => {
        /// The 16-row form: rows 0..16 of the block only, from `a.a`; rows 16..32 of `c` are
        /// left as they were. Safety: as the 32-row form, with A's rows from `a.a` only.
        #[inline(always)]
        unsafe fn $name(chunks: usize, a: ATiles, b: *const u8, c: &mut Block) {
            debug_assert!(chunks > 0);
            // SAFETY: as the 32-row form, reading 16 rows of A and writing 16 rows of `c`.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "2:",
                    "tileloadd tmm6, [{b} + {ldb}*1]",
                    "tileloadd tmm7, [{b} + {ldb}*1 + 64]",
                    "tileloadd tmm4, [{a} + {lda}*1]",
                    concat!($op, " tmm0, tmm4, tmm6"),
                    concat!($op, " tmm1, tmm4, tmm7"),
                    "add {a}, {step}",
                    "add {b}, {bstep}",
                    "dec {n}",
                    "jnz 2b",
                    "tilestored [{c} + {ldc}*1], tmm0",
                    "tilestored [{c} + {ldc}*1 + 64], tmm1",
                    a = inout(reg) a.a => _,
                    b = inout(reg) b => _,
                    n = inout(reg) chunks => _,
                    lda = in(reg) a.lda,
                    step = in(reg) a.step,
                    ldb = in(reg) B_STRIDE,
                    bstep = const TILE_ROWS * B_STRIDE,
                    c = in(reg) c.0.as_mut_ptr(),
                    ldc = in(reg) C_STRIDE,
                    options(nostack)
                )
            };
        }
    };
}

general_tile_loop!(dpbusd_32_at, "tdpbusd", two);
general_tile_loop!(dpbusd_16_at, "tdpbusd", one);
general_tile_loop!(dpbf16_32_at, "tdpbf16ps", two);
general_tile_loop!(dpbf16_16_at, "tdpbf16ps", one);

/// One block's K loop: on the tiles ([`AmxLoop`]) or, in tests, on a software model of them.
/// `two`: rows 0..32 of the block, else rows 0..16 (rows 16..32 of `c` are then left as they
/// were). Safety (both methods): the tile loops' contract ([`tile_loop`]): for [`AmxLoop`] the
/// tiles configured; `a` valid for 16 or 32 rows of `chunks` steps ([`ATiles`]), `b` for
/// `chunks * 16` groups of 128 bytes.
trait BlockLoop {
    /// `tdpbusd`: unsigned bytes of A by signed bytes of the panel, summed in i32.
    unsafe fn dpbusd(&self, two: bool, chunks: usize, a: ATiles, b: *const u8, c: &mut Block);
    /// `tdpbf16ps`: bf16 pairs of A by the panel's pairs, summed in f32.
    unsafe fn dpbf16(&self, two: bool, chunks: usize, a: ATiles, b: *const u8, c: &mut Block);
}

/// The hardware tiles: A in rows through [`tile_loop`]'s loops (what every table runs), in
/// tile order through [`general_tile_loop`]'s.
struct AmxLoop;

impl BlockLoop for AmxLoop {
    #[inline(always)]
    unsafe fn dpbusd(&self, two: bool, chunks: usize, a: ATiles, b: *const u8, c: &mut Block) {
        // SAFETY: the trait's contract; A in rows has its rows 16..32 16 rows on.
        unsafe {
            match (two, a.step == CHUNK) {
                (true, true) => dpbusd_32(chunks, a.a, a.lda, b, c),
                (false, true) => dpbusd_16(chunks, a.a, a.lda, b, c),
                (true, false) => dpbusd_32_at(chunks, a, b, c),
                (false, false) => dpbusd_16_at(chunks, a, b, c),
            }
        }
    }

    #[inline(always)]
    unsafe fn dpbf16(&self, two: bool, chunks: usize, a: ATiles, b: *const u8, c: &mut Block) {
        // SAFETY: as `dpbusd`.
        unsafe {
            match (two, a.step == CHUNK) {
                (true, true) => dpbf16_32(chunks, a.a, a.lda, b, c),
                (false, true) => dpbf16_16(chunks, a.a, a.lda, b, c),
                (true, false) => dpbf16_32_at(chunks, a, b, c),
                (false, false) => dpbf16_16_at(chunks, a, b, c),
            }
        }
    }
}

/// One 32 x 32 int8 block of the tile GEMM's loop, as the GEMM runs it for A in rows (`step`
/// 64) or in tile order, C to `c`: for [`crate::peak::amx_i8_loops`], which times the loops
/// alone. Safety: as [`BlockLoop`]'s, 32 rows (the tiles configured).
pub(crate) unsafe fn tile_block_i8(chunks: usize, a: ATiles, b: *const u8, c: &mut Block) {
    // SAFETY: the caller's contract.
    unsafe { AmxLoop.dpbusd(true, chunks, a, b, c) }
}

/// A's tiles from `unit` (the first of 16 or 32 packed rows, `k_bytes` a row) from byte `from`
/// of K (a multiple of 64), for A in `order` ([`AOrder::Rows`] or [`AOrder::Tiles`]).
#[inline(always)]
fn a_tiles(unit: *const u8, k_bytes: usize, from: usize, order: AOrder) -> ATiles {
    let second = unit.wrapping_add(TILE_ROWS * k_bytes);
    match order {
        AOrder::Tiles => {
            let at = from / CHUNK * TILE_ROWS * CHUNK;
            ATiles {
                a: unit.wrapping_add(at),
                a2: second.wrapping_add(at),
                lda: CHUNK,
                step: TILE_ROWS * CHUNK,
            }
        }
        _ => ATiles {
            a: unit.wrapping_add(from),
            a2: second.wrapping_add(from),
            lda: k_bytes,
            step: CHUNK,
        },
    }
}

/// Whether the int8 tiles take this GEMM: K a non-zero multiple of 64, activation groups (if
/// any) too, and at least `min_rows` rows.
fn fits_i8(p: &Gemm<'_>, min_rows: usize) -> bool {
    let Weights::I8(w) = p.w else { return false };
    let groups_fit = w.groups.is_none_or(|g| g.size.is_multiple_of(CHUNK));
    p.k > 0 && p.k.is_multiple_of(CHUNK) && groups_fit && p.m() >= min_rows && p.n() > 0
}

/// Whether the bf16 tiles take this GEMM: K a non-zero multiple of 32, at least `min_rows`
/// rows.
fn fits_bf16(p: &Gemm<'_>, min_rows: usize) -> bool {
    p.k > 0 && p.k.is_multiple_of(CHUNK / 2) && p.m() >= min_rows && p.n() > 0
}

/// The int8 GEMM on AMX where it fits (see the module docs), else on AVX-512 VNNI. Safety: AMX
/// is enabled, and the caller runs with AVX-512 F, BW, VL, VNNI, FMA and F16C.
#[inline(always)]
pub(crate) unsafe fn gemm_i8_amx(p: Gemm<'_>, scratch: &mut GemmScratch, min_rows: usize) {
    p.check();
    // SAFETY: the caller's contract covers both paths (AMX enabled, so the tiles may be
    // configured).
    unsafe {
        if fits_i8(&p, min_rows) {
            let _tiles = Tiles::configure();
            blocks_i8(p, ASource::Own(scratch), &AmxLoop, AOrder::Rows)
        } else {
            gemm_i8::<Avx512Vnni, VNNI_MR, VNNI_NV, VNNI_MRG, VNNI_SMALL, VNNI_TAIL>(p, scratch)
        }
    }
}

/// The first of the int8 GEMM's two stages on AMX ([`super::SharedGemm`], through which
/// threads that divide N share one packing of A): rows `rows` of A packed as [`gemm_i8_amx`]
/// packs them for the tiles (row-major, whole tiles of 16 rows) where the tiles take `p`, else
/// as AVX-512 VNNI packs them (its micro-panels of 8 and 4 rows divide 16). `rows.start` is a
/// multiple of 16. Safety: the caller runs with AVX-512 F, BW, VL, VNNI, FMA and F16C.
#[inline(always)]
pub(crate) unsafe fn pack_i8_amx(
    p: &Gemm<'_>,
    rows: std::ops::Range<usize>,
    out: PackedAMut<'_>,
    tmp: &mut PackTmp,
    min_rows: usize,
) {
    // SAFETY: the caller's contract.
    unsafe { pack_i8_tiles(p, rows, out, tmp, min_rows, AOrder::Rows) }
}

/// [`pack_i8_amx`] with A's tiles in `order` ([`AOrder::Rows`] or [`AOrder::Tiles`]). Safety:
/// as [`pack_i8_amx`]'s.
#[inline(always)]
unsafe fn pack_i8_tiles(
    p: &Gemm<'_>,
    rows: std::ops::Range<usize>,
    out: PackedAMut<'_>,
    tmp: &mut PackTmp,
    min_rows: usize,
    order: AOrder,
) {
    p.check();
    debug_assert!(rows.start.is_multiple_of(TILE_ROWS));
    // SAFETY: the caller's contract.
    unsafe {
        if fits_i8(p, min_rows) {
            let Weights::I8(w) = p.w else {
                unreachable!("fits_i8 checked the weights")
            };
            let a = &p.a[rows.start * p.lda..];
            let group = w.groups.map(|g| g.size);
            let (mc, k) = (rows.len(), p.k);
            pack_a_i8::<Avx512Vnni, TILE_ROWS, 0>(
                a,
                p.lda,
                mc,
                k,
                w.input_scale,
                group,
                order,
                out,
                tmp,
            )
        } else {
            pack_i8::<Avx512Vnni, VNNI_MR, VNNI_MRG, VNNI_SMALL, VNNI_TAIL>(p, rows, out, tmp)
        }
    }
}

/// The second stage: the int8 GEMM over A packed whole by [`pack_i8_amx`], on the tiles where
/// they take `p` (the same test as the packing's: `p` differs from the packed GEMM only in N),
/// else on AVX-512 VNNI. Safety: as [`gemm_i8_amx`]'s.
#[inline(always)]
pub(crate) unsafe fn gemm_i8_amx_packed(p: Gemm<'_>, a: &PackedA, min_rows: usize) {
    p.check();
    // SAFETY: the caller's contract covers both paths (AMX enabled, so the tiles may be
    // configured).
    unsafe {
        if fits_i8(&p, min_rows) {
            let _tiles = Tiles::configure();
            blocks_i8(p, ASource::Packed(a), &AmxLoop, AOrder::Rows)
        } else {
            gemm_i8_packed::<Avx512Vnni, VNNI_MR, VNNI_NV, VNNI_MRG, VNNI_SMALL, VNNI_TAIL>(p, a)
        }
    }
}

/// The bf16 GEMM on AMX where it fits, else on AVX-512 through `D` (`vdpbf16ps`, or widened
/// FMAs where the CPU issues those faster: `CpuFeatures::vdpbf16ps_fast`). Safety: AMX is
/// enabled, and the caller runs with AVX-512 F, BW, VL, BF16, FMA and F16C.
#[inline(always)]
pub(crate) unsafe fn gemm_bf16_amx<D: DotBf16>(
    p: Gemm<'_>,
    scratch: &mut GemmScratch,
    min_rows: usize,
) {
    p.check();
    // SAFETY: the caller's contract covers both paths (AMX enabled, so the tiles may be
    // configured).
    unsafe {
        if fits_bf16(&p, min_rows) {
            let _tiles = Tiles::configure();
            blocks_bf16(p, scratch, &AmxLoop, AOrder::Rows)
        } else {
            gemm_bf16::<D, 8, 2, 4>(p, scratch)
        }
    }
}

/// The int8 or bf16 GEMM on the tiles with A packed in tile order ([`AOrder::Tiles`]: each
/// tile's 1 KiB in one piece) rather than in rows: in no dispatch table, for measuring the
/// two layouts against each other on AMX (`gemm_sweep --tile-order`) before either becomes the
/// tables'. Returns false, leaving C as it was, without AMX or for a GEMM the tiles do not
/// take at any row count (K, or int8's activation groups, not a multiple of 64; bf16's K not
/// a multiple of 32).
#[doc(hidden)]
pub fn gemm_tiles_in_tile_order(p: Gemm<'_>, scratch: &mut GemmScratch) -> bool {
    p.check();
    let takes = match p.w {
        Weights::I8(_) => fits_i8(&p, 1),
        Weights::Bf16(_) => fits_bf16(&p, 1),
        _ => false,
    };
    if !takes || !crate::isa::cpu_features().supports(crate::Isa::Amx) {
        return false;
    }
    // SAFETY: AMX is enabled (checked above), which implies the AVX-512 features the entry is
    // compiled with (`CpuFeatures::supports`).
    unsafe { tile_order_entry(p, scratch) };
    true
}

/// [`gemm_tiles_in_tile_order`]'s tiles. Safety: AMX is enabled; the GEMM fits the tiles.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
unsafe fn tile_order_entry(p: Gemm<'_>, scratch: &mut GemmScratch) {
    // SAFETY: the function's contract; the features are enabled here.
    unsafe {
        let _tiles = Tiles::configure();
        match p.w {
            Weights::I8(_) => blocks_i8(p, ASource::Own(scratch), &AmxLoop, AOrder::Tiles),
            _ => blocks_bf16(p, scratch, &AmxLoop, AOrder::Tiles),
        }
    }
}

/// The tile loops of the int8 GEMM (`fits_i8` holds; sizes checked), A packed block by block
/// into a scratch or beforehand (rows in the tiles' layout, [`pack_i8_amx`]). Safety: as
/// [`gemm_i8_amx`]'s, and `tiles`' ([`BlockLoop`]).
#[inline(always)]
unsafe fn blocks_i8<L: BlockLoop>(
    mut p: Gemm<'_>,
    mut source: ASource<'_>,
    tiles: &L,
    order: AOrder,
) {
    let Weights::I8(w) = p.w else {
        unreachable!("fits_i8 checked the weights")
    };
    let (m, n, k) = (p.m(), p.n(), p.k);
    let (size, count) = match w.groups {
        Some(g) => (g.size, act_groups(k, g.size)),
        None => (k, 1),
    };
    let layout = ALayout::of(&p);
    source.check(layout, m.div_ceil(TILE_ROWS) * TILE_ROWS);
    let c_ptr = p.c.as_mut_ptr();
    let mut block = Block::ZERO;
    for ic in (0..m).step_by(MC) {
        let mc = MC.min(m - ic);
        // The block's first row in the packing: packed per block, or all of A beforehand.
        let base = match source {
            ASource::Own(_) => 0,
            ASource::Packed(_) => ic,
        };
        let packed: &PackedA = match &mut source {
            ASource::Own(scratch) => {
                let grouped = w.groups.map(|_| size);
                let a = &p.a[ic * p.lda..];
                let GemmScratch { a: packed, tmp, .. } = &mut **scratch;
                let out = packed.rows_mut(layout, mc.div_ceil(TILE_ROWS) * TILE_ROWS);
                pack_a_i8::<Avx512Vnni, TILE_ROWS, 0>(
                    a,
                    p.lda,
                    mc,
                    k,
                    w.input_scale,
                    grouped,
                    order,
                    out,
                    tmp,
                );
                packed
            }
            ASource::Packed(a) => a,
        };
        for jr in (0..n).step_by(PANEL) {
            let nc = PANEL.min(n - jr);
            // The panel's channel sums and scales, padded with zeros past `n`.
            let (mut cs, mut ws) = ([0i32; PANEL], [0.0f32; PANEL]);
            cs[..nc].copy_from_slice(&w.col_sum[jr..jr + nc]);
            ws[..nc].copy_from_slice(&w.scale[jr..jr + nc]);
            // Not sliced: the panel holds `k / 4` groups of 128 bytes from here.
            let wp = w.q.as_ptr().cast::<u8>().wrapping_add(jr * k);
            for ir in (0..mc).step_by(2 * TILE_ROWS) {
                let rows = (2 * TILE_ROWS).min(mc - ir);
                let ap = packed.codes[(base + ir) * k..].as_ptr();
                // The tiles read rows ir..ir + 16 (or 32) of the packed block: mc rounded up to
                // 16 rows are packed, and `rows > 16` means 32 of them are.
                let run = |chunks: usize, from: usize, block: &mut Block| {
                    // SAFETY: `tiles` ready (the caller's contract); A holds `ceil16(rows)` rows
                    // of `k` bytes from `ap` (k bytes apart, or as their tiles), read from byte
                    // `from` of K, `chunks * 64` of it (within k); the panel holds k / 4 groups
                    // of 128 bytes from `wp`, read from group `from / 4`.
                    unsafe {
                        let (a, b) = (a_tiles(ap, k, from, order), wp.add(from / 4 * B_STRIDE));
                        tiles.dpbusd(rows > TILE_ROWS, chunks, a, b, block)
                    }
                };
                // SAFETY: AVX-512 F (the caller's contract).
                let mut f = [[unsafe { Avx512::splat(0.0) }; 2]; 2 * TILE_ROWS];
                if let Some(g) = w.groups {
                    // Group sums of this panel (whole panels are stored): group `gi`'s 32 at
                    // `(jr / PANEL) * PANEL * count + gi * PANEL`.
                    let sums = &g.sums[jr * count..(jr + PANEL) * count];
                    for gi in 0..count {
                        // The last group holds what remains of K (a multiple of 64 too).
                        let depth = size.min(k - gi * size);
                        run(depth / CHUNK, gi * size, &mut block);
                        let s = [&sums[gi * PANEL..], &sums[gi * PANEL + 16..]];
                        for (r, f_r) in f.iter_mut().enumerate().take(rows) {
                            let at = (base + ir + r) * count + gi;
                            // SAFETY: AVX-512 F (the caller's contract).
                            let (scale, corr) = unsafe {
                                (
                                    Avx512::splat(packed.scale[at]),
                                    Avx512::splat(-packed.corr[at]),
                                )
                            };
                            for (j, f_rj) in f_r.iter_mut().enumerate() {
                                // SAFETY: AVX-512 (the caller's contract); row r < 32 of the
                                // block and 16 sums at `s[j]` (32 per group are stored).
                                unsafe {
                                    let acc = block_lanes(&block, r, j);
                                    let sum = Avx512::load(s[j].as_ptr());
                                    *f_rj = Avx512::fma(Avx512Vnni::cvt(acc), scale, *f_rj);
                                    *f_rj = Avx512::fma(corr, sum, *f_rj);
                                }
                            }
                        }
                    }
                    for f_r in f.iter_mut().take(rows) {
                        for (j, f_rj) in f_r.iter_mut().enumerate() {
                            // SAFETY: AVX-512; 16 of the 32 padded scales.
                            *f_rj =
                                unsafe { Avx512::mul(*f_rj, Avx512::load(ws[j * 16..].as_ptr())) };
                        }
                    }
                } else {
                    run(k / CHUNK, 0, &mut block);
                    for (r, f_r) in f.iter_mut().enumerate().take(rows) {
                        let (scale, zp) = (packed.scale[base + ir + r], packed.zp[base + ir + r]);
                        for (j, f_rj) in f_r.iter_mut().enumerate() {
                            // SAFETY: AVX-512; row r < 32 of the block, 16 of the 32 padded
                            // sums and scales. The operations and their order are
                            // `kernel::run_i8`'s.
                            unsafe {
                                let acc = block_lanes(&block, r, j);
                                let v = Avx512Vnni::to_f32(acc, cs[j * 16..].as_ptr(), zp);
                                let ws = Avx512::load(ws[j * 16..].as_ptr());
                                *f_rj = Avx512::mul(Avx512::mul(v, ws), Avx512::splat(scale));
                            }
                        }
                    }
                }
                // SAFETY: AVX-512; each 8-row slab is stored at (ic + ir + 8 s, jr) with its
                // valid rows and nc columns, inside C.
                unsafe { store_rows(&p, c_ptr, &f, (ic + ir, jr), (rows, nc)) };
            }
        }
    }
}

/// The tile loops of the bf16 GEMM (`fits_bf16` holds; sizes checked). Safety: as
/// [`gemm_bf16_amx`]'s, and `tiles`' ([`BlockLoop`]).
#[inline(always)]
unsafe fn blocks_bf16<L: BlockLoop>(
    mut p: Gemm<'_>,
    scratch: &mut GemmScratch,
    tiles: &L,
    order: AOrder,
) {
    let Weights::Bf16(w) = p.w else {
        panic!("gemm: the table routed other weights here");
    };
    let (m, n, k) = (p.m(), p.n(), p.k);
    let pairs = k / 2;
    let layout = ALayout::of(&p);
    let c_ptr = p.c.as_mut_ptr();
    let mut block = Block::ZERO;
    for ic in (0..m).step_by(MC) {
        let mc = MC.min(m - ic);
        let a = &p.a[ic * p.lda..];
        let GemmScratch { a: packed, tmp, .. } = &mut *scratch;
        let out = packed
            .rows_mut(layout, mc.div_ceil(TILE_ROWS) * TILE_ROWS)
            .bf16;
        // SAFETY: the caller runs with AVX-512 F/BW/VL and BF16 (this function's contract).
        unsafe { pack_a_bf16_rows(a, p.lda, mc, k, out, order, &mut tmp.rows_bf16) };
        for jr in (0..n).step_by(PANEL) {
            let nc = PANEL.min(n - jr);
            // The panel: `pairs` rows of 32 channel pairs (128 bytes) from here.
            let wp = w.as_ptr().cast::<u8>().wrapping_add(jr * k * 2);
            for ir in (0..mc).step_by(2 * TILE_ROWS) {
                let rows = (2 * TILE_ROWS).min(mc - ir);
                let ap = scratch.a.bf16[ir * pairs..].as_ptr().cast::<u8>();
                let at = a_tiles(ap, 2 * k, 0, order);
                // SAFETY: `tiles` ready (the caller's contract); A holds `ceil16(rows)` rows of
                // `2k` bytes from `ap` (or their tiles), of which `k / 32` steps of 64 are read;
                // the panel holds `k / 2` rows of 128 bytes from `wp`.
                unsafe { tiles.dpbf16(rows > TILE_ROWS, k / 32, at, wp, &mut block) };
                // SAFETY: AVX-512 F (the caller's contract).
                let mut f = [[unsafe { Avx512::splat(0.0) }; 2]; 2 * TILE_ROWS];
                for (r, f_r) in f.iter_mut().enumerate().take(rows) {
                    for (j, f_rj) in f_r.iter_mut().enumerate() {
                        // SAFETY: AVX-512; row r < 32 of the block.
                        *f_rj = unsafe { _mm512_castsi512_ps(block_lanes(&block, r, j)) };
                    }
                }
                // SAFETY: as in the int8 GEMM.
                unsafe { store_rows(&p, c_ptr, &f, (ic + ir, jr), (rows, nc)) };
            }
        }
    }
}

/// Rounds `mc` rows of A (`k` even) to bf16 pairs into rows of `k / 2` pairs in `out`, `mc`
/// rounded up to 16 rows (the padding rows zero): the A tiles' layout, in rows or (`order`
/// [`AOrder::Tiles`], `k` a multiple of 32) as whole tiles of 16 rows x 16 pairs, through
/// `row` (one row's pairs). Safety: AVX-512 F/BW/VL and BF16.
#[inline(always)]
unsafe fn pack_a_bf16_rows(
    a: &[f32],
    lda: usize,
    mc: usize,
    k: usize,
    out: &mut [u32],
    order: AOrder,
    row: &mut Vec<u32>,
) {
    let pairs = k / 2;
    let rows = mc.div_ceil(TILE_ROWS) * TILE_ROWS;
    grow(row, pairs, 0);
    for r in 0..rows {
        let dst = match order {
            AOrder::Tiles => &mut row[..pairs],
            _ => &mut out[r * pairs..(r + 1) * pairs],
        };
        if r < mc {
            // SAFETY: AVX-512 with BF16 (the caller's contract).
            unsafe { bf16::round_row_bf16::<Avx512Bf16>(&a[r * lda..r * lda + k], dst) };
        } else {
            dst.fill(0);
        }
        if order == AOrder::Tiles {
            // Row r's runs of 16 pairs (64 bytes), each in row r % 16 of its tile.
            let tiles = &mut out[r / 16 * 16 * pairs..(r / 16 + 1) * 16 * pairs];
            for (t, run) in row[..pairs].chunks_exact(16).enumerate() {
                tiles[t * 256 + r % 16 * 16..][..16].copy_from_slice(run);
            }
        }
    }
}

/// Lanes `16 j .. 16 j + 16` of row `r` of the block. Safety: AVX-512 F; `r < 32`, `j < 2`.
#[inline(always)]
unsafe fn block_lanes(block: &Block, r: usize, j: usize) -> __m512i {
    debug_assert!(r < 2 * TILE_ROWS && j < 2);
    // SAFETY: the block holds 32 rows of 32 lanes; the caller's contract.
    unsafe { _mm512_loadu_si512(block.0.as_ptr().add(r * PANEL + j * 16).cast()) }
}

/// Stores `rows x nc` results of `f` at `(row, col)` of C through the shared epilogue (bias,
/// then GELU or residual), in slabs of 8 rows. Safety: AVX-512; the block lies inside C.
#[inline(always)]
unsafe fn store_rows(
    p: &Gemm<'_>,
    c_ptr: *mut f32,
    f: &[[__m512; 2]; 2 * TILE_ROWS],
    (row, col): (usize, usize),
    (rows, nc): (usize, usize),
) {
    for (s, slab) in f
        .as_chunks::<8>()
        .0
        .iter()
        .enumerate()
        .take(rows.div_ceil(8))
    {
        let mr = (rows - s * 8).min(8);
        let out = p.tile_out(c_ptr, (row + s * 8, col), (mr, nc), true, true);
        // SAFETY: the caller's contract; `tile_out` bounds the slab to its valid elements.
        unsafe { kernel::store::<Avx512, 8, 2>(slab, &out) };
    }
}

#[cfg(test)]
mod tests {
    //! The tiles against the reference and AVX-512 at every row count, with the row
    //! threshold set to 1 so that the tiles run even where the dispatch would not send them.
    //! Without AMX (CI's machines) there is nothing to run: each test says so and returns.

    use super::*;
    use crate::gemm::SharedGemm;
    use crate::gemm::{
        act_group_sums, gemm_ref, pack_weights_bf16, to_bf16, ActGroups, Epilogue, MatMut, PackTmp,
        PackedA, PackedI8, PackedI8Buf,
    };
    use crate::simd::Widen;
    use crate::tiles::bf16_daz;
    use crate::tolerance;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn amx() -> bool {
        let on = crate::isa::cpu_features().supports(crate::Isa::Amx);
        if !on {
            eprintln!("no AMX on this machine: the tile kernels are not run");
        }
        on
    }

    /// The kernel tests' values in `[-1, 1)`.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        crate::test_common::values(n, seed, 1.0)
    }

    /// Shapes: M over 1..=40 and MC +- 1, N over panel edges, K multiples of 64 (and one that
    /// is not, which goes to VNNI), every epilogue, strided A and C.
    fn shapes() -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (i, m) in (1..=40).chain([MC - 1, MC, MC + 1, 300]).enumerate() {
            let n = [1, 15, 16, 17, 31, 32, 33, 64, 65, 100][i % 10];
            let k = [64, 128, 192, 384, 768, 100][i % 6];
            out.push((m, n, k));
        }
        out
    }

    fn epilogue<'a>(i: usize, r: &'a [f32], ld: usize) -> Epilogue<'a> {
        [Epilogue::None, Epilogue::Gelu, Epilogue::Residual { r, ld }][i % 3]
    }

    /// int8 on the tiles is bit-identical to AVX-512 VNNI (the same exact sums, the same f32
    /// operations), per row and per group of 64, 128 and 192, with and without input scales.
    #[test]
    fn int8_tiles_equal_vnni_bit_for_bit() {
        if amx() {
            check_i8(i8_tiles);
        }
    }

    /// On AMX, A in tile order ([`gemm_tiles_in_tile_order`]) too: int8 bit-identical to
    /// VNNI, bf16 within the reference's tolerance.
    #[test]
    fn tile_order_on_the_tiles() {
        if amx() {
            check_i8(i8_tile_order);
            check_bf16(bf16_tile_order);
        }
    }

    /// [`gemm_tiles_in_tile_order`], or VNNI where it does not take the GEMM. Safety: AMX is
    /// enabled.
    unsafe fn i8_tile_order(p: Gemm<'_>, s: &mut GemmScratch) {
        if fits_i8(&p, 1) {
            assert!(
                gemm_tiles_in_tile_order(p, s),
                "the tiles refused a GEMM they take"
            );
        } else {
            // SAFETY: the function's contract (AMX comes with AVX-512 VNNI).
            unsafe { i8_vnni(p, s) }
        }
    }

    /// [`gemm_tiles_in_tile_order`], or the reference where it does not take the GEMM.
    unsafe fn bf16_tile_order(p: Gemm<'_>, s: &mut GemmScratch) {
        if fits_bf16(&p, 1) {
            assert!(
                gemm_tiles_in_tile_order(p, s),
                "the tiles refused a GEMM they take"
            );
        } else {
            gemm_ref(p, s)
        }
    }

    /// The int8 driver (A's rows or tiles, the runs over panels, rows and groups, the
    /// epilogue) on the tiles' software model, bit-identical to AVX-512 VNNI on any CPU with
    /// it, A in rows and in tile order.
    #[test]
    fn int8_driver_on_the_model_equals_vnni() {
        if !vnni() {
            return;
        }
        check_i8(i8_model::<false>);
        check_i8(i8_model::<true>);
    }

    /// The bf16 driver on the tiles' software model against the reference, A in rows and in
    /// tile order.
    #[test]
    fn bf16_driver_on_the_model_matches_reference() {
        if !vnni() || !crate::isa::cpu_features().avx512bf16 {
            return;
        }
        check_bf16(bf16_model::<false>);
        check_bf16(bf16_model::<true>);
    }

    /// Threads that divide N share one packing of A through the tiles' two stages
    /// (`pack_i8_amx`, then the driver over it; `gemm_par`'s `shared_run`), on the software
    /// model: bit-identical to one call of AVX-512 VNNI at every thread count, per row and per
    /// group, with and without input scales, over two MC blocks and over a block of 17 rows
    /// (a tile and one row); and with all of A packed beforehand (the driver's blocks then read
    /// their rows further into the packing).
    #[test]
    fn shared_packing_on_the_model_equals_vnni() {
        if !vnni() {
            return;
        }
        let base = crate::dispatch::Kernels::for_isa(crate::Isa::Avx512).expect("AVX-512");
        let kernels = crate::dispatch::Kernels {
            gemm_i8: model_entry,
            shared_i8: Some(SharedGemm {
                mr: TILE_ROWS,
                mr_grouped: TILE_ROWS,
                mr_small: 0,
                bf16_words: 1,
                pack: model_pack,
                compute: model_compute,
            }),
            ..base
        };
        let shapes: [(usize, usize, usize, &[usize]); 3] = [
            (64, 100, 384, &[2, 3]),
            (300, 200, 128, &[5]),
            (17, 65, 1024, &[2, 3]),
        ];
        let mut vnni_scratch = GemmScratch::default();
        for (i, (m, n, k, threads)) in shapes.into_iter().enumerate() {
            let a = values(m * k, i as u64);
            let q = PackedI8Buf::quantize(&values(n * k, i as u64 + 1), n, k);
            let bias = values(n, 7);
            let factors: Vec<f32> = (0..k).map(|x| [0.5, 1.5, 3.0][x % 3]).collect();
            for (group, scaled) in [(None, false), (Some(64), true), (Some(128), false)] {
                let sums = group.map(|g| act_group_sums(&q.q, k, g));
                let w = PackedI8 {
                    input_scale: scaled.then_some(&factors[..]),
                    groups: group.map(|size| ActGroups {
                        size,
                        sums: sums.as_deref().unwrap_or_default(),
                    }),
                    ..q.view()
                };
                fn gemm<'g>(
                    (a, w, bias): (&'g [f32], PackedI8<'g>, &'g [f32]),
                    (m, n, k): (usize, usize, usize),
                    c: &'g mut [f32],
                ) -> Gemm<'g> {
                    Gemm {
                        k,
                        a,
                        lda: k,
                        w: Weights::I8(w),
                        bias: Some(bias),
                        epilogue: Epilogue::Gelu,
                        c: MatMut::new(c, m, n, n),
                    }
                }
                let ops = (&a[..], w, &bias[..]);
                let mut want = vec![f32::NAN; m * n];
                // SAFETY: the CPU has AVX-512 VNNI (checked above).
                unsafe { i8_vnni(gemm(ops, (m, n, k), &mut want), &mut vnni_scratch) };
                // And A packed whole beforehand, over every MC block at once.
                let mut packed = PackedA::default();
                let mut got = vec![f32::NAN; m * n];
                let p = gemm(ops, (m, n, k), &mut got);
                let out = packed.rows_mut(ALayout::of(&p), m.div_ceil(TILE_ROWS) * TILE_ROWS);
                model_pack(&p, 0..m, out, &mut PackTmp::default());
                model_compute(p, &packed, &mut Vec::new());
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(g, v)| g.to_bits() == v.to_bits());
                assert!(same, "m={m} n={n} k={k} group={group:?}: A packed whole");
                for &t in threads {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(t)
                        .build()
                        .expect("a pool");
                    let mut scratch = vec![GemmScratch::default(); t];
                    let packs = PACKS.load(Ordering::Relaxed);
                    let mut got = vec![f32::NAN; m * n];
                    let p = gemm(ops, (m, n, k), &mut got);
                    crate::gemm::gemm_par(&kernels, p, &mut scratch, &pool);
                    assert!(
                        PACKS.load(Ordering::Relaxed) > packs,
                        "m={m} n={n} k={k} threads={t}: A's packing was not shared"
                    );
                    for (idx, (g, v)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            v.to_bits(),
                            "m={m} n={n} k={k} group={group:?} threads={t} at {idx}: {g} vs {v}"
                        );
                    }
                }
            }
        }
    }

    /// Calls of `model_pack`: whether `gemm_par` took the shared stages.
    static PACKS: AtomicUsize = AtomicUsize::new(0);

    fn model_entry(p: Gemm<'_>, s: &mut GemmScratch) {
        // SAFETY: installed only by the test above, which checked for AVX-512 VNNI.
        unsafe { i8_model::<false>(p, s) }
    }

    fn model_pack(
        p: &Gemm<'_>,
        rows: std::ops::Range<usize>,
        out: PackedAMut<'_>,
        t: &mut PackTmp,
    ) {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
        unsafe fn inner(
            p: &Gemm<'_>,
            r: std::ops::Range<usize>,
            o: PackedAMut<'_>,
            t: &mut PackTmp,
        ) {
            // SAFETY: the features are enabled here.
            unsafe { pack_i8_amx(p, r, o, t, 1) }
        }
        PACKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: installed only by the test above, which checked for AVX-512 VNNI.
        unsafe { inner(p, rows, out, t) }
    }

    fn model_compute(p: Gemm<'_>, a: &PackedA, _spill: &mut Vec<f32>) {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
        unsafe fn inner(p: Gemm<'_>, a: &PackedA) {
            p.check();
            // SAFETY: the features are enabled here; the model needs no tiles.
            unsafe {
                if fits_i8(&p, 1) {
                    blocks_i8(p, ASource::Packed(a), &ModelLoop, AOrder::Rows)
                } else {
                    gemm_i8_packed::<Avx512Vnni, VNNI_MR, VNNI_NV, VNNI_MRG, VNNI_SMALL, VNNI_TAIL>(
                        p, a,
                    )
                }
            }
        }
        // SAFETY: installed only by the test above, which checked for AVX-512 VNNI.
        unsafe { inner(p, a) }
    }

    /// Whether the CPU has AVX-512 with VNNI and BF16's packing needs (the software model's
    /// tests), saying so when not.
    fn vnni() -> bool {
        let f = crate::isa::cpu_features();
        let on = f.supports(crate::Isa::Avx512) && f.avx512vnni;
        if !on {
            eprintln!("no AVX-512 VNNI: the drivers are not run on the tiles' model");
        }
        on
    }

    /// A tile GEMM entry under test: AMX's, or the drivers on the model.
    type Entry = unsafe fn(Gemm<'_>, &mut GemmScratch);

    fn check_i8(tiles: Entry) {
        let mut scratch = GemmScratch::default();
        for (i, (m, n, k)) in shapes().into_iter().enumerate() {
            let (lda, ldc, ldr) = (k + i % 3, n + i % 2, n + 1);
            let a = values(m * lda, i as u64);
            let q = PackedI8Buf::quantize(&values(n * k, i as u64 + 1), n, k);
            let bias = values(n, 7);
            let res = values(m * ldr, 8);
            let factors: Vec<f32> = (0..k).map(|x| [0.5, 1.5, 3.0][x % 3]).collect();
            for group in [None, Some(64), Some(128), Some(192)] {
                let sums = group.map(|g| act_group_sums(&q.q, k, g));
                let w = PackedI8 {
                    input_scale: (i % 2 == 1).then_some(&factors[..]),
                    groups: group.map(|size| ActGroups {
                        size,
                        sums: sums.as_deref().unwrap_or_default(),
                    }),
                    ..q.view()
                };
                let mut run = |amx: bool| {
                    let mut c = vec![f32::NAN; m * ldc];
                    let p = Gemm {
                        k,
                        a: &a,
                        lda,
                        w: Weights::I8(w),
                        bias: (i % 4 != 0).then_some(&bias[..]),
                        epilogue: epilogue(i, &res, ldr),
                        c: MatMut::new(&mut c, m, n, ldc),
                    };
                    // SAFETY: the caller checked the CPU has what `tiles` needs, which
                    // implies the AVX-512 VNNI features of the other path.
                    unsafe {
                        if amx {
                            tiles(p, &mut scratch)
                        } else {
                            i8_vnni(p, &mut scratch)
                        }
                    }
                    c
                };
                let (tiles, vnni) = (run(true), run(false));
                for (idx, (t, v)) in tiles.iter().zip(&vnni).enumerate() {
                    assert!(
                        t.to_bits() == v.to_bits() || (t.is_nan() && v.is_nan()),
                        "m={m} n={n} k={k} group={group:?} at {idx}: {t} vs {v}"
                    );
                }
            }
        }
    }

    /// bf16 on the tiles against the reference (f64 sums of the bf16-rounded operands) within
    /// the f32 GEMM tolerance: `tdpbf16ps` rounds its sums differently from `vdpbf16ps`.
    #[test]
    fn bf16_tiles_match_reference() {
        if amx() {
            check_bf16(bf16_tiles::<Avx512Bf16>);
            check_bf16(bf16_tiles::<Widen<Avx512>>);
        }
    }

    fn check_bf16(tiles: Entry) {
        let mut scratch = GemmScratch::default();
        for (i, (m, n, k)) in shapes().into_iter().enumerate() {
            let (lda, ldc, ldr) = (k + i % 3, n + i % 2, n + 1);
            let a = values(m * lda, i as u64);
            let wf = values(n * k, i as u64 + 1);
            let w = pack_weights_bf16(&wf, n, k);
            let bias = values(n, 7);
            let res = values(m * ldr, 8);
            let mut run = |amx: bool| {
                let mut c = vec![f32::NAN; m * ldc];
                let p = Gemm {
                    k,
                    a: &a,
                    lda,
                    w: Weights::Bf16(&w),
                    bias: (i % 4 != 0).then_some(&bias[..]),
                    epilogue: epilogue(i, &res, ldr),
                    c: MatMut::new(&mut c, m, n, ldc),
                };
                if amx {
                    // SAFETY: the caller checked the CPU has what `tiles` needs.
                    unsafe { tiles(p, &mut scratch) }
                } else {
                    gemm_ref(p, &mut scratch)
                }
                c
            };
            let (tiles, want) = (run(true), run(false));
            for r in 0..m {
                for j in 0..ldc {
                    let (t, v) = (tiles[r * ldc + j], want[r * ldc + j]);
                    if j >= n {
                        assert!(t.is_nan(), "wrote outside C at ({r}, {j})");
                        continue;
                    }
                    let mut mag: f32 = (0..k).map(|x| (a[r * lda + x] * wf[j * k + x]).abs()).sum();
                    mag += bias[j].abs() + res[r * ldr + j].abs();
                    let tol = tolerance::gemm_f32(k, mag) + tolerance::gelu(mag);
                    assert!(
                        tolerance::within(t, v, tol),
                        "m={m} n={n} k={k} at ({r}, {j}): {t} vs {v} (tol {tol})"
                    );
                }
            }
        }
    }

    /// Which GEMMs the tiles take: K a multiple of 64 (int8) or 32 (bf16), activation groups a
    /// multiple of 64, at least the threshold's rows. Runs anywhere (no tile is touched).
    #[test]
    fn the_tiles_take_only_the_shapes_they_can() {
        let a = values(20 * 192, 3);
        let mut c = vec![0.0f32; 20 * 40];
        let mut fits = |m: usize, k: usize, group: Option<usize>, bf16: bool, min: usize| {
            let w = values(40 * k, 1);
            let (q, b) = (
                PackedI8Buf::quantize(&w, 40, k),
                pack_weights_bf16(&w, 40, k),
            );
            let sums = group
                .map(|g| act_group_sums(&q.q, k, g))
                .unwrap_or_default();
            let groups = group.map(|size| ActGroups { size, sums: &sums });
            let p = Gemm {
                k,
                a: &a,
                lda: 192,
                w: match bf16 {
                    true => Weights::Bf16(&b),
                    false => Weights::I8(PackedI8 { groups, ..q.view() }),
                },
                bias: None,
                epilogue: Epilogue::None,
                c: MatMut::new(&mut c, m, 40, 40),
            };
            match bf16 {
                true => fits_bf16(&p, min),
                false => fits_i8(&p, min),
            }
        };
        assert!(fits(16, 192, None, false, 16));
        assert!(!fits(15, 192, None, false, 16));
        assert!(fits(16, 192, Some(64), false, 16));
        assert!(fits(16, 192, Some(128), false, 16));
        assert!(!fits(16, 192, Some(32), false, 16));
        assert!(!fits(16, 100, None, false, 16));
        assert!(!fits(16, 0, None, false, 16));
        assert!(fits(1, 192, None, true, 1));
        assert!(fits(1, 96, None, true, 1));
        assert!(!fits(1, 100, None, true, 1));
        assert!(!fits(0, 192, None, true, 1));
    }

    #[test]
    fn the_row_threshold_override_parses() {
        let defaults = (AMX_MIN_ROWS_I8, AMX_MIN_ROWS_BF16);
        assert_eq!(min_rows_from(None), Ok(defaults));
        assert_eq!(min_rows_from(Some(" ")), Ok(defaults));
        assert_eq!(min_rows_from(Some(" 1 ")), Ok((1, 1)));
        assert!(matches!(
            min_rows_from(Some("many")),
            Err(crate::IsaError::AmxRows { .. })
        ));
        assert!(min_rows_from(Some("-3")).is_err());
    }

    /// The A operands of the tiles, checked where they are made, on any CPU with AVX-512 (and
    /// BF16 for bf16): int8 rows are the codes the VNNI packing interleaves (unsigned, the same
    /// scales and zero points), bf16 rows the pairs `to_bf16` rounds, padded with zero rows to
    /// 16.
    #[test]
    fn tile_operands_are_the_packed_rows() {
        if !crate::isa::cpu_features().avx512vnni
            || !crate::isa::cpu_features().supports(crate::Isa::Avx512)
        {
            eprintln!("no AVX-512 VNNI: the int8 packing is not checked");
        } else {
            for (mc, k) in [(1, 64), (17, 128), (32, 100), (5, 4)] {
                let a = values(mc * k, mc as u64);
                let kp = k.div_ceil(4) * 4;
                let (mut rows, mut panels) = (PackedA::default(), PackedA::default());
                let rows_packed = mc.div_ceil(TILE_ROWS) * TILE_ROWS;
                // SAFETY: AVX-512 with VNNI (checked above).
                unsafe { pack_both(&a, mc, k, &mut rows, &mut panels) };
                for r in 0..rows_packed {
                    for kk in 0..kp {
                        let want = if r < mc {
                            panels.codes[(r / 16) * 16 * kp + (kk / 4) * 64 + (r % 16) * 4 + kk % 4]
                        } else {
                            0
                        };
                        assert_eq!(rows.codes[r * kp + kk], want, "mc={mc} k={k} ({r}, {kk})");
                    }
                    assert_eq!(rows.scale[r], panels.scale[r]);
                    assert_eq!(rows.zp[r], panels.zp[r]);
                }
            }
        }
        let f = crate::isa::cpu_features();
        if !f.supports(crate::Isa::Avx512) || !f.avx512bf16 {
            eprintln!("no AVX-512 BF16: the bf16 packing is not checked");
            return;
        }
        for (mc, k) in [(1, 32), (17, 64), (16, 2)] {
            let lda = k + 3;
            let a = values(mc * lda, 5);
            let mut out = vec![7u32; mc.div_ceil(16) * 16 * k / 2];
            // SAFETY: the CPU has AVX-512 F/BW/VL and BF16 (checked above).
            unsafe { pack_bf16(&a, lda, mc, k, &mut out) };
            for r in 0..mc.div_ceil(16) * 16 {
                for s in 0..k / 2 {
                    let want = if r < mc {
                        let (x0, x1) = (a[r * lda + 2 * s], a[r * lda + 2 * s + 1]);
                        u32::from(to_bf16(x0).to_bits()) | u32::from(to_bf16(x1).to_bits()) << 16
                    } else {
                        0
                    };
                    assert_eq!(out[r * k / 2 + s], want, "mc={mc} k={k} ({r}, {s})");
                }
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn pack_bf16(a: &[f32], lda: usize, mc: usize, k: usize, out: &mut [u32]) {
        // SAFETY: the features are enabled here.
        unsafe { pack_a_bf16_rows(a, lda, mc, k, out, AOrder::Rows, &mut Vec::new()) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn pack_both(a: &[f32], mc: usize, k: usize, rows: &mut PackedA, panels: &mut PackedA) {
        let layout = ALayout {
            codes: k.div_ceil(4) * 4,
            scale: 1,
            zp: 1,
            corr: 0,
            bf16: 0,
        };
        let n = mc.div_ceil(TILE_ROWS) * TILE_ROWS;
        let tmp = &mut PackTmp::default();
        let (r, p) = (rows.rows_mut(layout, n), panels.rows_mut(layout, n));
        pack_a_i8::<Avx512Vnni, TILE_ROWS, 0>(a, k, mc, k, None, None, AOrder::Rows, r, tmp);
        pack_a_i8::<Avx512Vnni, TILE_ROWS, 0>(a, k, mc, k, None, None, AOrder::Panels, p, tmp);
    }

    // The paths compared, compiled with the features the dispatch table's entries enable.
    // Safety (each): AMX is enabled, which on every CPU that has it comes with those features.

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
    unsafe fn i8_tiles(p: Gemm<'_>, s: &mut GemmScratch) {
        // SAFETY: the function's contract.
        unsafe { gemm_i8_amx(p, s, 1) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
    unsafe fn i8_vnni(p: Gemm<'_>, s: &mut GemmScratch) {
        // SAFETY: the function's contract.
        unsafe { gemm_i8::<Avx512Vnni, VNNI_MR, VNNI_NV, VNNI_MRG, VNNI_SMALL, VNNI_TAIL>(p, s) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
    unsafe fn bf16_tiles<D: DotBf16>(p: Gemm<'_>, s: &mut GemmScratch) {
        // SAFETY: the function's contract.
        unsafe { gemm_bf16_amx::<D>(p, s, 1) }
    }

    /// The int8 driver on the model (the fallback for shapes the tiles do not take, as on
    /// AMX). Safety: AVX-512 F/BW/VL with VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    unsafe fn i8_model<const TILES: bool>(p: Gemm<'_>, s: &mut GemmScratch) {
        p.check();
        // SAFETY: the function's contract; the model needs no tiles.
        unsafe {
            if fits_i8(&p, 1) {
                blocks_i8(p, ASource::Own(s), &ModelLoop, order(TILES))
            } else {
                gemm_i8::<Avx512Vnni, VNNI_MR, VNNI_NV, VNNI_MRG, VNNI_SMALL, VNNI_TAIL>(p, s)
            }
        }
    }

    /// The bf16 driver on the model. Safety: AVX-512 F/BW/VL with BF16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,fma,f16c")]
    unsafe fn bf16_model<const TILES: bool>(p: Gemm<'_>, s: &mut GemmScratch) {
        p.check();
        // SAFETY: the function's contract; the model needs no tiles.
        unsafe {
            if fits_bf16(&p, 1) {
                blocks_bf16(p, s, &ModelLoop, order(TILES))
            } else {
                gemm_bf16::<Avx512Bf16, 8, 2, 4>(p, s)
            }
        }
    }

    /// A in tile order or in rows.
    fn order(tiles: bool) -> AOrder {
        match tiles {
            true => AOrder::Tiles,
            false => AOrder::Rows,
        }
    }

    /// The tile loops in software: `tdpbusd`'s exact i32 sums, and `tdpbf16ps` as
    /// [`crate::tiles`]'s model computes it (each instruction's 16 pairs summed into C in
    /// order, bf16 denormals read as zero, denormal results flushed).
    struct ModelLoop;

    /// The byte of A's row `r` (< 32) at byte `x` of the K loop, where [`ATiles`] puts it.
    fn a_at(a: ATiles, r: usize, x: usize) -> *const u8 {
        let row = match r < TILE_ROWS {
            true => a.a.wrapping_add(r * a.lda),
            false => a.a2.wrapping_add((r - TILE_ROWS) * a.lda),
        };
        row.wrapping_add(x / CHUNK * a.step + x % CHUNK)
    }

    impl BlockLoop for ModelLoop {
        unsafe fn dpbusd(&self, two: bool, chunks: usize, a: ATiles, b: *const u8, c: &mut Block) {
            for r in 0..if two { 2 * TILE_ROWS } else { TILE_ROWS } {
                for ch in 0..PANEL {
                    let mut acc = 0i32;
                    for k in 0..chunks * CHUNK {
                        // SAFETY: the trait's contract: A's row r holds `chunks` steps of 64
                        // bytes where `a` says, the panel `chunks * 16` groups of 128.
                        let (x, y) =
                            unsafe { (*a_at(a, r, k), *b.add(k / 4 * B_STRIDE + ch * 4 + k % 4)) };
                        acc += i32::from(x) * i32::from(y as i8);
                    }
                    c.0[r * PANEL + ch] = acc as u32;
                }
            }
        }

        unsafe fn dpbf16(&self, two: bool, chunks: usize, a: ATiles, b: *const u8, c: &mut Block) {
            let word = |p: *const u8| {
                // SAFETY: the callers below read within the trait's contract.
                u32::from_le_bytes(unsafe { [*p, *p.add(1), *p.add(2), *p.add(3)] })
            };
            for r in 0..if two { 2 * TILE_ROWS } else { TILE_ROWS } {
                for ch in 0..PANEL {
                    let mut acc = 0.0f32;
                    for step in 0..chunks {
                        for pair in step * 16..step * 16 + 16 {
                            // SAFETY: A's row r holds `chunks * 16` pairs where `a` says, the
                            // panel as many rows of 32 channels' pairs.
                            let (x, y) = unsafe {
                                (
                                    word(a_at(a, r, pair * 4)),
                                    word(b.add(pair * B_STRIDE + ch * 4)),
                                )
                            };
                            let lo = bf16_daz(x) * bf16_daz(y);
                            let hi = bf16_daz(x >> 16) * bf16_daz(y >> 16);
                            acc += lo + hi;
                        }
                        if acc.is_subnormal() {
                            acc = 0.0f32.copysign(acc);
                        }
                    }
                    c.0[r * PANEL + ch] = acc.to_bits();
                }
            }
        }
    }
}
