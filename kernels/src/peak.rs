//! Register-only loops that measure this machine's arithmetic peak per core, so that GEMM
//! results can be quoted as a fraction of it: independent chains of fused multiply-adds that
//! never touch memory (enough chains to cover the FMA latency on two ports), and the same for
//! the int8 dot-product instructions (`vpdpbusd`), and the AMX tile products.

/// The body of every public loop below: on x86-64, when `$ok` (over the CPU's features `$f`)
/// holds, runs `x86::$run(iters)` and returns `iters * $ops`; else, and on other
/// architectures, `None`.
macro_rules! peak_loop {
    ($iters:ident, $ops:expr, |$f:ident| $ok:expr, $run:ident) => {{
        #[cfg(target_arch = "x86_64")]
        {
            let $f = crate::isa::cpu_features();
            if !$ok {
                return None;
            }
            // SAFETY: the check above confirmed the features the loop is compiled for.
            unsafe { x86::$run($iters) };
            Some($iters * $ops)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = $iters;
            None
        }
    }};
}

/// Runs `iters` iterations of 24 independent 16-lane f32 FMA chains on AVX-512 and returns the
/// number of floating-point operations done (2 per lane per FMA), or `None` without AVX-512.
pub fn fma_f32_avx512(iters: u64) -> Option<u64> {
    peak_loop!(
        iters,
        24 * 16 * 2,
        |f| f.supports(crate::Isa::Avx512),
        fma_avx512
    )
}

/// Runs `iters` iterations of 12 independent 8-lane f32 FMA chains on AVX2 and returns the
/// number of floating-point operations done, or `None` without AVX2 and FMA.
pub fn fma_f32_avx2(iters: u64) -> Option<u64> {
    peak_loop!(
        iters,
        12 * 8 * 2,
        |f| f.supports(crate::Isa::Avx2),
        fma_avx2
    )
}

/// Runs `iters` iterations of 24 independent 16-lane `vpdpbusd` chains on AVX-512 VNNI and
/// returns the number of integer operations done (4 multiplies and 4 adds per lane), or `None`
/// without AVX-512 VNNI.
pub fn vnni_i8_avx512(iters: u64) -> Option<u64> {
    peak_loop!(
        iters,
        24 * 16 * 8,
        |f| f.supports(crate::Isa::Avx512) && f.avx512vnni,
        vnni_avx512
    )
}

/// Runs `iters` iterations of 12 independent 8-lane AVX-VNNI `vpdpbusd` chains and returns the
/// number of integer operations done, or `None` without AVX-VNNI.
pub fn vnni_i8_avx(iters: u64) -> Option<u64> {
    peak_loop!(
        iters,
        12 * 8 * 8,
        |f| f.supports(crate::Isa::Avx2) && f.avx_vnni,
        vnni_avx
    )
}

/// Runs `iters` iterations of 24 independent 16-lane `vdpbf16ps` chains on AVX-512 BF16 and
/// returns the number of floating-point operations done (2 multiplies and 2 adds per lane), or
/// `None` without AVX-512 BF16.
pub fn dpbf16_avx512(iters: u64) -> Option<u64> {
    peak_loop!(
        iters,
        24 * 16 * 4,
        |f| f.supports(crate::Isa::Avx512) && f.avx512bf16,
        dpbf16_avx512
    )
}

/// Runs `iters` iterations of 4 independent AMX `tdpbusd` chains (16 x 16 x 64 each) on
/// register-resident tiles and returns the integer operations done (2 per multiply-add), or
/// `None` where AMX is not enabled ([`crate::amx::support`]).
pub fn amx_i8(iters: u64) -> Option<u64> {
    peak_loop!(
        iters,
        4 * 16 * 16 * 64 * 2,
        |f| f.supports(crate::Isa::Amx),
        amx_i8
    )
}

/// Runs `iters` iterations of 4 independent AMX `tdpbf16ps` chains (16 x 16 x 32 each) and
/// returns the floating-point operations done, or `None` where AMX is not enabled.
pub fn amx_bf16(iters: u64) -> Option<u64> {
    peak_loop!(
        iters,
        4 * 16 * 16 * 32 * 2,
        |f| f.supports(crate::Isa::Amx),
        amx_bf16
    )
}

/// Where the A operand of [`amx_i8_loops`] lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileA {
    /// Row-major rows of K bytes, as the int8 tile GEMM packs A: each tile is 16 rows K bytes
    /// apart.
    Rows,
    /// Tile order: each tile (16 rows x 64 bytes) in 1 KiB of its own, a row block's tiles one
    /// after another along K.
    Tiles,
    /// The same 32 rows x 64 bytes of A at every step, and the first weight panel for every
    /// block: A in L1, and B too up to K = 1024 (32 K bytes), so the loop with its operands
    /// close.
    Cached,
}

/// One 32 x 32 block's walk in [`amx_i8_loops`]: byte offsets of A's rows 0..16 and 16..32
/// into A, the bytes between those rows and between steps of 64 bytes of K, and the offset
/// of the weight panel into B (whose steps are 16 groups of 128 bytes, as in the GEMM).
#[cfg(any(target_arch = "x86_64", test))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlockWalk {
    a: usize,
    a2: usize,
    lda: usize,
    astep: usize,
    b: usize,
}

/// The walks of an `m x k` by `k x n` product's blocks in the tile GEMM's order (panel by
/// panel, 32 rows at a time), A laid out as `layout`, B as the int8 weight panels (`k` bytes
/// per channel). `m` and `n` are multiples of 32, `k` of 64.
#[cfg(any(target_arch = "x86_64", test))]
fn block_walks(m: usize, n: usize, k: usize, layout: TileA) -> impl Iterator<Item = BlockWalk> {
    let steps = k / 64;
    (0..n).step_by(32).flat_map(move |jr| {
        (0..m).step_by(32).map(move |ir| match layout {
            TileA::Rows => BlockWalk {
                a: ir * k,
                a2: (ir + 16) * k,
                lda: k,
                astep: 64,
                b: jr * k,
            },
            TileA::Tiles => BlockWalk {
                a: ir / 16 * steps * 1024,
                a2: (ir / 16 + 1) * steps * 1024,
                lda: 64,
                astep: 1024,
                b: jr * k,
            },
            TileA::Cached => BlockWalk {
                a: 0,
                a2: 16 * 64,
                lda: 64,
                astep: 0,
                b: 0,
            },
        })
    })
}

/// The int8 tile GEMM's loops alone, without A's packing and the epilogue: for each 32 x 32
/// block of an `m x k` by `k x n` product, in the GEMM's order, the GEMM's own loop (four C
/// tiles zeroed, the K loop of `tdpbusd`, the four tiles stored: `gemm::amx::tile_block_i8`),
/// with A laid out as `layout`; `reps` passes after one unmeasured pass. Returns the passes'
/// rate in GOP/s (2 m n k operations a pass), or `None` without AMX or for shapes it does not
/// take (`m` and `n` multiples of 32, `k` of 64, none zero). For what bounds the tile GEMM:
/// against
/// [`amx_i8`]'s register-only peak (`Cached`: the loop with its operands close) and against
/// the whole GEMM (`gemm_sweep`).
pub fn amx_i8_loops(m: usize, n: usize, k: usize, layout: TileA, reps: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let fits = |x: usize, of: usize| x > 0 && x.is_multiple_of(of);
        if !crate::isa::cpu_features().supports(crate::Isa::Amx)
            || !fits(m, 32)
            || !fits(n, 32)
            || !fits(k, 64)
        {
            return None;
        }
        use crate::gemm::amx::{tile_block_i8, ATiles, Block};
        let a = vec![1u8; m * k];
        let b = vec![1u8; n * k];
        let mut c = Block::ZERO;
        // Once for every pass, as the GEMM configures them once a call. SAFETY: AMX is enabled
        // (checked above).
        let _tiles = unsafe { crate::tiles::Tiles::configure() };
        let pass = |c: &mut Block| {
            for w in block_walks(m, n, k, layout) {
                let at = ATiles {
                    a: a.as_ptr().wrapping_add(w.a),
                    a2: a.as_ptr().wrapping_add(w.a2),
                    lda: w.lda,
                    step: w.astep,
                };
                // SAFETY: the tiles are configured; `block_walks_stay_inside` checks that every
                // row the loop reads lies in `a` (m k bytes) and `b` (n k bytes).
                unsafe { tile_block_i8(k / 64, at, b.as_ptr().wrapping_add(w.b), c) }
            }
        };
        pass(&mut c);
        let t = std::time::Instant::now();
        for _ in 0..reps {
            pass(&mut c);
        }
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(&c);
        Some(2.0 * (m * n * k) as f64 * reps as f64 / secs / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k, layout, reps);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_avx512(iters: u64) {
        let mut acc = [_mm512_set1_ps(0.0); 24];
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm512_set1_ps(0.0);
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        std::hint::black_box(s);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_avx2(iters: u64) {
        let mut acc = [_mm256_set1_ps(0.0); 12];
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm256_set1_ps(0.0);
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        std::hint::black_box(s);
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn vnni_avx512(iters: u64) {
        let mut acc = [_mm512_setzero_si512(); 24];
        let a = _mm512_set1_epi8(3);
        let b = _mm512_set1_epi8(-2);
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_si512();
        for v in acc {
            s = _mm512_add_epi32(s, v);
        }
        std::hint::black_box(s);
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn dpbf16_avx512(iters: u64) {
        let mut acc = [_mm512_set1_ps(0.0); 24];
        let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5), _mm512_set1_ps(0.25));
        let b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3), _mm512_set1_ps(-1e-3));
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, b);
            }
        }
        let mut s = _mm512_set1_ps(0.0);
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        std::hint::black_box(s);
    }

    /// `tdpbusd` chains. Safety: AMX enabled.
    pub(super) unsafe fn amx_i8(iters: u64) {
        // SAFETY: the caller's contract.
        unsafe { amx(iters, false) }
    }

    /// `tdpbf16ps` chains. Safety: AMX enabled.
    pub(super) unsafe fn amx_bf16(iters: u64) {
        // SAFETY: the caller's contract.
        unsafe { amx(iters, true) }
    }

    /// Zeroed tiles multiplied into 4 accumulators, `iters` times each. Safety: AMX enabled.
    unsafe fn amx(iters: u64, bf16: bool) {
        #[repr(C, align(64))]
        struct Config([u8; 64]);
        let mut cfg = Config([0; 64]);
        cfg.0[0] = 1;
        for t in 0..8 {
            cfg.0[16 + 2 * t] = 64;
            cfg.0[48 + t] = 16;
        }
        macro_rules! chains {
            ($op:literal) => {
                // SAFETY: AMX is enabled (the caller's contract); LDTILECFG reads the 64-byte
                // configuration (8 tiles of 16 x 64 bytes), the loop touches only tiles and
                // the counter, TILERELEASE ends the tile use.
                unsafe {
                    std::arch::asm!(
                        "ldtilecfg [{cfg}]",
                        "tilezero tmm4",
                        "tilezero tmm5",
                        "tilezero tmm6",
                        "tilezero tmm7",
                        "test {n}, {n}",
                        "jz 3f",
                        "2:",
                        concat!($op, " tmm0, tmm4, tmm6"),
                        concat!($op, " tmm1, tmm4, tmm7"),
                        concat!($op, " tmm2, tmm5, tmm6"),
                        concat!($op, " tmm3, tmm5, tmm7"),
                        "dec {n}",
                        "jnz 2b",
                        "3:",
                        "tilerelease",
                        cfg = in(reg) &cfg,
                        n = inout(reg) iters => _,
                        options(nostack)
                    )
                }
            };
        }
        if bf16 {
            chains!("tdpbf16ps");
        } else {
            chains!("tdpbusd");
        }
    }

    #[target_feature(enable = "avx2,avxvnni")]
    pub(super) unsafe fn vnni_avx(iters: u64) {
        let mut acc = [_mm256_setzero_si256(); 12];
        let a = _mm256_set1_epi8(3);
        let b = _mm256_set1_epi8(-2);
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_dpbusd_avx_epi32(*v, a, b);
            }
        }
        let mut s = _mm256_setzero_si256();
        for v in acc {
            s = _mm256_add_epi32(s, v);
        }
        std::hint::black_box(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile row [`amx_i8_loops`]' walks read lies inside its A (m k bytes) and B (n k
    /// bytes), for each layout: checked here because the loops themselves run only on AMX.
    #[test]
    fn block_walks_stay_inside() {
        for (m, n, k) in [
            (32, 32, 64),
            (128, 768, 768),
            (64, 96, 3072),
            (512, 32, 384),
        ] {
            for layout in [TileA::Rows, TileA::Tiles, TileA::Cached] {
                let mut seen = 0;
                for w in block_walks(m, n, k, layout) {
                    seen += 1;
                    for step in 0..k / 64 {
                        for row in 0..16 {
                            for base in [w.a, w.a2] {
                                let at = base + step * w.astep + row * w.lda;
                                assert!(at + 64 <= m * k, "{layout:?} {m}x{n}x{k}: A at {at}");
                            }
                            // Channels 0..16 at +0, 16..32 at +64 of each 128-byte group.
                            let at = w.b + step * 16 * 128 + row * 128;
                            assert!(at + 128 <= n * k, "{layout:?} {m}x{n}x{k}: B at {at}");
                        }
                    }
                }
                assert_eq!(seen, (m / 32) * (n / 32));
            }
        }
    }

    /// The tile layout puts A's tiles where the rows layout's rows are: tile (row block, step)
    /// of `Tiles` holds what rows `16 rb..16 rb + 16`, bytes `64 step..64 step + 64` of `Rows`
    /// would, one tile after another.
    #[test]
    fn tile_layout_is_tile_order() {
        let (m, k) = (64, 192);
        let rows: Vec<_> = block_walks(m, 32, k, TileA::Rows).collect();
        let tiles: Vec<_> = block_walks(m, 32, k, TileA::Tiles).collect();
        for (r, t) in rows.iter().zip(&tiles) {
            assert_eq!((r.a / k / 16) * (k / 64) * 1024, t.a);
            assert_eq!((r.a2 / k / 16) * (k / 64) * 1024, t.a2);
            assert_eq!((t.lda, t.astep), (64, 1024));
        }
    }
}
