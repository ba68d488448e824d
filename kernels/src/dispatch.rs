//! The dispatch table: one function pointer per kernel, filled with the scalar reference
//! kernels first and overridden by the optimised ones an ISA has, so a slot is never empty
//! (BLIS's registration). The table for the running process follows `BERTH_ISA`
//! ([`crate::isa::selected`]); tests build the table of every ISA this CPU supports and hold
//! each slot against the reference.
//!
//! The SIMD entry points below are private and safe to call only because a table holding
//! them is built solely by [`Kernels::for_isa`], after run-time detection confirmed the ISA.

use std::sync::OnceLock;

use half::f16;

use crate::elementwise::{self, LayerNormRows};
use crate::gemm::{self, GemmF32, GemmScratch};
use crate::isa::{cpu_features, Isa, IsaError};
use crate::{convert, quant};

/// The kernels of one instruction-set path.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// The path this table is for.
    pub isa: Isa,
    pub f16_to_f32: fn(&[f16], &mut [f32]),
    pub quantize_row_i8: fn(&[f32], &mut [i8]) -> f32,
    pub layer_norm: fn(LayerNormRows<'_>),
    pub softmax: fn(&mut [f32]),
    pub gelu: fn(&mut [f32]),
    /// `C = A W^T + bias (+ epilogue)` with weights packed by [`gemm::pack_weights`].
    pub gemm_f32: fn(GemmF32<'_>, &mut GemmScratch),
}

impl Kernels {
    /// The scalar reference kernels: the twins every other path is tested against.
    pub const REFERENCE: Kernels = Kernels {
        isa: Isa::Scalar,
        f16_to_f32: convert::f16_to_f32,
        quantize_row_i8: quant::quantize_row_i8,
        layer_norm: elementwise::layer_norm_ref,
        softmax: elementwise::softmax_ref,
        gelu: elementwise::gelu_ref,
        gemm_f32: gemm::gemm_f32_ref,
    };

    /// The table for `isa`, if this CPU can run it.
    pub fn for_isa(isa: Isa) -> Result<Kernels, IsaError> {
        let features = cpu_features();
        if !features.supports(isa) {
            return Err(IsaError::Unsupported {
                requested: isa,
                best: features.best_isa(),
            });
        }
        let mut k = Kernels {
            isa,
            ..Kernels::REFERENCE
        };
        match isa {
            Isa::Scalar => {}
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::install_avx512(&mut k),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::install_avx2(&mut k),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => arm::install_neon(&mut k),
            // `supports` is false for the other architecture's paths.
            #[allow(unreachable_patterns)]
            _ => {}
        }
        Ok(k)
    }
}

/// Every path this CPU supports, best first.
pub fn supported_isas() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar]
        .into_iter()
        .filter(|&i| cpu_features().supports(i))
        .collect()
}

/// The kernels of this process: the CPU's best path, or the one `BERTH_ISA` forces.
pub fn kernels() -> Result<&'static Kernels, IsaError> {
    static TABLE: OnceLock<Result<Kernels, IsaError>> = OnceLock::new();
    TABLE
        .get_or_init(|| crate::isa::selected().and_then(Kernels::for_isa))
        .as_ref()
        .map_err(Clone::clone)
}

/// Defines a private safe entry point `$entry` that runs the generic body `$m::$f::<$g>` inside
/// a `#[target_feature]` function. Only [`Kernels::for_isa`] installs these, after detection.
macro_rules! simd_entry {
    ($entry:ident, $features:literal, [$($g:tt)*], $m:ident::$f:ident, ($($arg:ident: $t:ty),*) $(-> $ret:ty)?) => {
        fn $entry($($arg: $t),*) $(-> $ret)? {
            #[target_feature(enable = $features)]
            unsafe fn inner($($arg: $t),*) $(-> $ret)? {
                // SAFETY: the target features are enabled here, which is what the body needs.
                unsafe { $m::$f::<$($g)*>($($arg),*) }
            }
            // SAFETY: this entry point is reachable only through a table built by
            // `Kernels::for_isa`, which checked at run time that the CPU has `$features`.
            unsafe { inner($($arg),*) }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::simd::avx2::Avx2;
    use crate::simd::avx512::Avx512;

    simd_entry!(layer_norm_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], elementwise::layer_norm, (p: LayerNormRows<'_>));
    simd_entry!(softmax_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], elementwise::softmax, (x: &mut [f32]));
    simd_entry!(gelu_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], elementwise::gelu, (x: &mut [f32]));
    simd_entry!(gemm_f32_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512, 8, 2], gemm::gemm_f32, (p: GemmF32<'_>, s: &mut GemmScratch));
    simd_entry!(gemm_f32_avx2, "avx2,fma,f16c", [Avx2, 6, 2], gemm::gemm_f32, (p: GemmF32<'_>, s: &mut GemmScratch));
    simd_entry!(quantize_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], quant::quantize_row, (s: &[f32], d: &mut [i8]) -> f32);
    simd_entry!(layer_norm_avx2, "avx2,fma,f16c", [Avx2], elementwise::layer_norm, (p: LayerNormRows<'_>));
    simd_entry!(softmax_avx2, "avx2,fma,f16c", [Avx2], elementwise::softmax, (x: &mut [f32]));
    simd_entry!(gelu_avx2, "avx2,fma,f16c", [Avx2], elementwise::gelu, (x: &mut [f32]));
    simd_entry!(quantize_avx2, "avx2,fma,f16c", [Avx2], quant::quantize_row, (s: &[f32], d: &mut [i8]) -> f32);

    fn f16_to_f32_avx512(s: &[f16], d: &mut [f32]) {
        // SAFETY: installed only by `Kernels::for_isa(Isa::Avx512)`, after detection.
        unsafe { convert::x86::f16_to_f32_avx512(s, d) }
    }

    fn f16_to_f32_f16c(s: &[f16], d: &mut [f32]) {
        // SAFETY: installed only by `Kernels::for_isa(Isa::Avx2 | Isa::Avx512)`, after detection
        // (both require AVX2 and F16C).
        unsafe { convert::x86::f16_to_f32_f16c(s, d) }
    }

    pub(super) fn install_avx512(k: &mut Kernels) {
        k.f16_to_f32 = f16_to_f32_avx512;
        k.quantize_row_i8 = quantize_avx512;
        k.layer_norm = layer_norm_avx512;
        k.softmax = softmax_avx512;
        k.gelu = gelu_avx512;
        k.gemm_f32 = gemm_f32_avx512;
    }

    pub(super) fn install_avx2(k: &mut Kernels) {
        k.f16_to_f32 = f16_to_f32_f16c;
        k.quantize_row_i8 = quantize_avx2;
        k.layer_norm = layer_norm_avx2;
        k.softmax = softmax_avx2;
        k.gelu = gelu_avx2;
        k.gemm_f32 = gemm_f32_avx2;
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::*;
    use crate::simd::neon::Neon;

    simd_entry!(layer_norm_neon, "neon", [Neon], elementwise::layer_norm, (p: LayerNormRows<'_>));
    simd_entry!(softmax_neon, "neon", [Neon], elementwise::softmax, (x: &mut [f32]));
    simd_entry!(gelu_neon, "neon", [Neon], elementwise::gelu, (x: &mut [f32]));
    simd_entry!(gemm_f32_neon, "neon", [Neon, 6, 4], gemm::gemm_f32, (p: GemmF32<'_>, s: &mut GemmScratch));
    simd_entry!(quantize_neon, "neon", [Neon], quant::quantize_row, (s: &[f32], d: &mut [i8]) -> f32);

    /// f16 widening stays on the reference: `half` already converts with the hardware's
    /// `fcvt` on aarch64 CPUs that have fp16, and the NEON f16 vector types are not stable.
    pub(super) fn install_neon(k: &mut Kernels) {
        k.quantize_row_i8 = quantize_neon;
        k.layer_norm = layer_norm_neon;
        k.softmax = softmax_neon;
        k.gelu = gelu_neon;
        k.gemm_f32 = gemm_f32_neon;
    }
}
