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
