//! The vocabulary on aarch64 Advanced SIMD (4 f32 lanes). Every function is `#[inline(always)]`
//! so that it compiles into the caller's `#[target_feature(enable = "neon")]` body.

use std::arch::aarch64::*;

use super::{DotI8, Simd};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon;

impl Simd for Neon {
    const LANES: usize = 4;
    type F = float32x4_t;

    #[inline(always)]
    unsafe fn splat(x: f32) -> float32x4_t {
        // SAFETY: the caller runs on a CPU with NEON (module docs).
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        // SAFETY: `p` is valid for 4 reads (trait contract).
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        // SAFETY: `p` is valid for 4 writes (trait contract).
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> float32x4_t {
        // SAFETY: `p` is valid for 4 halves, 8 bytes (trait contract). `fcvtl` (half to single,
        // exact) is base Armv8 Advanced SIMD; it goes through `asm!` because the f16 vector
        // types its intrinsic takes are not stable on the pinned toolchain.
        unsafe {
            let r: float32x4_t;
            std::arch::asm!(
                "ldr {t:d}, [{p}]",
                "fcvtl {r:v}.4s, {t:v}.4h",
                p = in(reg) p,
                t = out(vreg) _,
                r = lateout(vreg) r,
                options(pure, readonly, nostack, preserves_flags),
            );
            r
        }
    }
    #[inline(always)]
    unsafe fn load_bf16_pairs(p: *const u32) -> (float32x4_t, float32x4_t) {
        // SAFETY: `p` is valid for 4 u32 (trait contract); base Advanced SIMD integer and/shift.
        // A bf16 value is the top half of the f32 with the same bits.
        unsafe {
            let x = vld1q_u32(p);
            let second = vandq_u32(x, vdupq_n_u32(0xffff_0000));
            let first = vshlq_n_u32::<16>(x);
            (vreinterpretq_f32_u32(second), vreinterpretq_f32_u32(first))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16_pairs(p: *mut u32, first: float32x4_t, second: float32x4_t) {
        // SAFETY: `p` is valid for 4 u32 writes (trait contract); base Advanced SIMD integer
        // operations.
        unsafe {
            vst1q_u32(
                p,
                vorrq_u32(bf16_bits(first), vshlq_n_u32::<16>(bf16_bits(second))),
            )
        }
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut u16, v: float32x4_t) {
        // SAFETY: `p` is valid for 4 u16 writes (trait contract); base Advanced SIMD. Each
        // lane holds its bits in the low half, so the narrowing move is exact.
        unsafe { vst1_u16(p, vmovn_u32(bf16_bits(v))) }
    }
    #[inline(always)]
    unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vmaxq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vminq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: NEON. vfmaq_f32(c, a, b) computes c + a * b.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    unsafe fn round(a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON (frintn: to nearest, ties to even).
        unsafe { vrndnq_f32(a) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: float32x4_t) -> float32x4_t {
        // SAFETY: NEON. `n + 127` is in 1..=254, a valid biased exponent.
        unsafe {
            let e = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
            vreinterpretq_f32_s32(vshlq_n_s32::<23>(e))
        }
    }
    #[inline(always)]
    unsafe fn select_ge(
        a: float32x4_t,
        b: float32x4_t,
        x: float32x4_t,
        y: float32x4_t,
    ) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vbslq_f32(vcgeq_f32(a, b), x, y) }
    }
    #[inline(always)]
    unsafe fn reduce_add(a: float32x4_t) -> f32 {
        // SAFETY: NEON.
        unsafe { vaddvq_f32(a) }
    }
    #[inline(always)]
    unsafe fn reduce_max(a: float32x4_t) -> f32 {
        // SAFETY: NEON.
        unsafe { vmaxvq_f32(a) }
    }
    #[inline(always)]
    unsafe fn store_u8(p: *mut u8, v: float32x4_t) {
        // SAFETY: NEON; `p` is valid for 4 writes. `fcvtnu` rounds to nearest, ties to even;
        // lanes are in 0..=255, so the narrowing moves are exact.
        unsafe {
            let w = vmovn_u32(vcvtnq_u32_f32(v));
            let b = vmovn_u16(vcombine_u16(w, w));
            let bytes = vget_lane_u32::<0>(vreinterpret_u32_u8(b));
            p.cast::<u32>().write_unaligned(bytes)
        }
    }
}

/// int8 dot products with the Armv8.2 dot-product extension: `sdot` (signed by signed, four
/// products into each i32 lane, no offset needed). Through `asm!`: the intrinsic is not stable
/// on the pinned toolchain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NeonDot;

impl DotI8 for NeonDot {
    type S = Neon;
    const OFFSET: bool = false;
    type I = int32x4_t;
    type A = int8x16_t;
    type W = int8x16_t;

    #[inline(always)]
    unsafe fn zero() -> int32x4_t {
        // SAFETY: NEON (the caller runs on a CPU with NEON and the dot-product extension).
        unsafe { vdupq_n_s32(0) }
    }
    #[inline(always)]
    unsafe fn add(a: int32x4_t, b: int32x4_t) -> int32x4_t {
        // SAFETY: NEON (as above).
        unsafe { vaddq_s32(a, b) }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const u8) -> int8x16_t {
        // SAFETY: `p` is valid for 4 reads (trait contract).
        unsafe { vreinterpretq_s8_s32(vdupq_n_s32(p.cast::<i32>().read_unaligned())) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const i8) -> int8x16_t {
        // SAFETY: `p` is valid for 16 reads (trait contract).
        unsafe { vld1q_s8(p) }
    }
    #[inline(always)]
    unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, w: int8x16_t) -> int32x4_t {
        // SAFETY: `sdot` needs the dot-product extension, which the caller's target features
        // enable; registers only.
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {a:v}.16b",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                a = in(vreg) a,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }
    #[inline(always)]
    unsafe fn to_f32(acc: int32x4_t, col_sum: *const i32, zp: i32) -> float32x4_t {
        // SAFETY: `col_sum` is valid for 4 reads (trait contract); NEON. `mls` wraps, which
        // gives the true sum (trait contract).
        unsafe { vcvtq_f32_s32(vmlsq_s32(acc, vld1q_s32(col_sum), vdupq_n_s32(zp))) }
    }
    #[inline(always)]
    unsafe fn cvt(acc: int32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vcvtq_f32_s32(acc) }
    }
}

/// int8 dot products on plain NEON: `smull`/`smull2` make the 16 i16 products (each at most
/// 128 x 127 = 16,256 in magnitude, exact), `saddlp` widens adjacent pairs into i32 and `addp`
/// adds the pairs of pairs, one sum of 4 per channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NeonMull;

impl DotI8 for NeonMull {
    type S = Neon;
    const OFFSET: bool = false;
    type I = int32x4_t;
    type A = int8x16_t;
    type W = int8x16_t;

    // Registers, broadcasts, loads and the conversion are `sdot`'s; only `dot` differs.
    #[inline(always)]
    unsafe fn zero() -> int32x4_t {
        // SAFETY: as `NeonDot::zero` (NEON only).
        unsafe { NeonDot::zero() }
    }
    #[inline(always)]
    unsafe fn add(a: int32x4_t, b: int32x4_t) -> int32x4_t {
        // SAFETY: as `NeonDot::add` (NEON only).
        unsafe { NeonDot::add(a, b) }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const u8) -> int8x16_t {
        // SAFETY: as `NeonDot::bcast` (NEON only; `p` valid for 4 reads).
        unsafe { NeonDot::bcast(p) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const i8) -> int8x16_t {
        // SAFETY: as `NeonDot::load_w` (NEON only; `p` valid for 16 reads).
        unsafe { NeonDot::load_w(p) }
    }
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, w: int8x16_t) -> int32x4_t {
        // SAFETY: NEON.
        unsafe {
            let lo = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(a)));
            let hi = vpaddlq_s16(vmull_high_s8(w, a));
            vaddq_s32(acc, vpaddq_s32(lo, hi))
        }
    }
    #[inline(always)]
    unsafe fn to_f32(acc: int32x4_t, col_sum: *const i32, zp: i32) -> float32x4_t {
        // SAFETY: as `NeonDot::to_f32` (NEON only; `col_sum` valid for 4 reads).
        unsafe { NeonDot::to_f32(acc, col_sum, zp) }
    }
    #[inline(always)]
    unsafe fn cvt(acc: int32x4_t) -> float32x4_t {
        // SAFETY: NEON.
        unsafe { vcvtq_f32_s32(acc) }
    }
}

/// Each lane of `x` rounded to bfloat16 bits (in the low half of the lane) as `gemm::to_bf16`
/// rounds (see the AVX-512 twin).
#[inline(always)]
unsafe fn bf16_bits(x: float32x4_t) -> uint32x4_t {
    // SAFETY: base Advanced SIMD integer operations (the caller's ISA).
    unsafe {
        let b = vreinterpretq_u32_f32(x);
        let top = vshrq_n_u32::<16>(b);
        let odd = vandq_u32(top, vdupq_n_u32(1));
        let bias = vaddq_u32(odd, vdupq_n_u32(0x7fff));
        let rounded = vshrq_n_u32::<16>(vaddq_u32(b, bias));
        let mag = vandq_u32(b, vdupq_n_u32(0x7fff_ffff));
        let nan = vcgtq_u32(mag, vdupq_n_u32(0x7f80_0000));
        let r = vbslq_u32(nan, vorrq_u32(top, vdupq_n_u32(0x40)), rounded);
        let exp = vandq_u32(b, vdupq_n_u32(0x7f80_0000));
        let tiny = vceqq_u32(exp, vdupq_n_u32(0));
        vbslq_u32(tiny, vandq_u32(top, vdupq_n_u32(0x8000)), r)
    }
}
