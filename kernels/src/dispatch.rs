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

use crate::attention::{self, AttentionHead, AttentionScratch};
use crate::elementwise::{self, LayerNormRows};
use crate::gemm::{self, Gemm, GemmScratch, PackTmp, PackedA, PackedAMut, SharedGemm, Weights};
use crate::isa::{cpu_features, CpuFeatures, Isa, IsaError};
use crate::{convert, quant};

/// The kernels of one instruction-set path.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// The path this table is for.
    pub isa: Isa,
    pub f16_to_f32: fn(&[f16], &mut [f32]),
    /// Asymmetric per-row quantisation of activations ([`quant::quantize_row_asym`]).
    pub quantize_row_asym: fn(&[f32], &mut [u8]) -> (f32, i32),
    pub layer_norm: fn(LayerNormRows<'_>),
    pub softmax: fn(&mut [f32]),
    pub gelu: fn(&mut [f32]),
    /// The int8 dot-product instructions `gemm_i8` uses (`"amx-int8"`, `"avx512-vnni"`,
    /// `"avx-vnni"`, `"avx2"`, `"neon-dotprod"`, `"neon"`, `"scalar"`).
    pub int8: &'static str,
    /// GEMM with f32 weights; call through [`Kernels::gemm`], which routes by weight type.
    pub gemm_f32: fn(Gemm<'_>, &mut GemmScratch),
    /// GEMM with f16 weights.
    pub gemm_f16: fn(Gemm<'_>, &mut GemmScratch),
    /// GEMM with int8 weights.
    pub gemm_i8: fn(Gemm<'_>, &mut GemmScratch),
    /// `gemm_i8` in two stages, through which [`gemm::gemm_par`]'s threads share one packing
    /// of A; none where the path packs A in its own calls only (the reference, AMX).
    pub shared_i8: Option<SharedGemm>,
    /// The bf16 dot products `gemm_bf16` uses (`"amx-bf16"`, `"avx512-bf16"`, or `"widened"` on
    /// the f32 instructions of the path, or `"scalar"`).
    pub bf16: &'static str,
    /// GEMM with bf16 weights (and activations rounded to bf16).
    pub gemm_bf16: fn(Gemm<'_>, &mut GemmScratch),
    /// `gemm_bf16` in two stages, as `shared_i8`.
    pub shared_bf16: Option<SharedGemm>,
    /// Fused attention of one (sequence, head) ([`crate::attention`]).
    pub attention: fn(AttentionHead<'_>, &mut AttentionScratch),
    /// The same with bf16 operands (Q, K, V and the softmax weights rounded to bfloat16, on
    /// the dot products of the `bf16` slot; the softmax in f32).
    pub attention_bf16: fn(AttentionHead<'_>, &mut AttentionScratch),
}

impl Kernels {
    /// The scalar reference kernels: the twins every other path is tested against.
    pub const REFERENCE: Kernels = Kernels {
        isa: Isa::Scalar,
        f16_to_f32: convert::f16_to_f32,
        quantize_row_asym: quant::quantize_row_asym,
        layer_norm: elementwise::layer_norm_ref,
        softmax: elementwise::softmax_ref,
        gelu: elementwise::gelu_ref,
        int8: "scalar",
        attention: attention::attention_ref,
        attention_bf16: attention::attention_bf16_ref,
        gemm_f32: gemm::gemm_ref,
        gemm_f16: gemm::gemm_ref,
        gemm_i8: gemm::gemm_ref,
        shared_i8: None,
        bf16: "scalar",
        gemm_bf16: gemm::gemm_ref,
        shared_bf16: None,
    };

    /// `C = A W^T + bias (+ epilogue)`, by the slot for `p`'s weight type.
    pub fn gemm(&self, p: Gemm<'_>, scratch: &mut GemmScratch) {
        match p.w {
            Weights::F32(_) => (self.gemm_f32)(p, scratch),
            Weights::F16(_) => (self.gemm_f16)(p, scratch),
            Weights::I8(_) => (self.gemm_i8)(p, scratch),
            Weights::Bf16(_) => (self.gemm_bf16)(p, scratch),
        }
    }

    /// The two-stage GEMM for `w`'s type, if this path has one.
    pub(crate) fn shared(&self, w: &Weights<'_>) -> Option<SharedGemm> {
        match w {
            Weights::I8(_) => self.shared_i8,
            Weights::Bf16(_) => self.shared_bf16,
            Weights::F32(_) | Weights::F16(_) => None,
        }
    }

    /// The table for `isa`, if this CPU can run it, with the best int8 instructions it has.
    pub fn for_isa(isa: Isa) -> Result<Kernels, IsaError> {
        Kernels::build(isa, true)
    }

    /// The table for `isa`; `dot` allows the optional dot-product extensions (VNNI, dotprod,
    /// AVX-512 BF16), so that tests can run the fallbacks on a CPU that has them.
    fn build(isa: Isa, dot: bool) -> Result<Kernels, IsaError> {
        Kernels::build_with(cpu_features(), isa, dot)
    }

    /// [`Kernels::build`] as if the CPU had only `features`, which must be a subset of what
    /// it has (the installed kernels rely on them; `vdpbf16ps_fast`, a preference, may be
    /// either): how tests take the fallbacks of a CPU without a feature, or of a process
    /// refused AMX, and the kernels another CPU would prefer.
    fn build_with(features: &CpuFeatures, isa: Isa, dot: bool) -> Result<Kernels, IsaError> {
        if !features.supports(isa) {
            return Err(IsaError::Unsupported {
                requested: isa,
                best: features.best_isa(),
            });
        }
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Amx {
            gemm::amx_min_rows()?;
        }
        let mut k = Kernels {
            isa,
            ..Kernels::REFERENCE
        };
        match isa {
            Isa::Scalar => {}
            #[cfg(target_arch = "x86_64")]
            Isa::Amx => x86::install_amx(&mut k, features, dot),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::install_avx512(&mut k, features, dot),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::install_avx2(&mut k, features, dot),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => arm::install_neon(&mut k, features, dot),
            // `supports` is false for the other architecture's paths.
            #[allow(unreachable_patterns)]
            _ => {}
        }
        Ok(k)
    }
}

/// Every path this CPU supports, best first.
pub fn supported_isas() -> Vec<Isa> {
    [Isa::Amx, Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar]
        .into_iter()
        .filter(|&i| cpu_features().supports(i))
        .collect()
}

/// Every table this CPU can run: each supported path with its best int8 instructions, and
/// again without the optional dot-product extensions where it has them (the fallbacks a CPU
/// without them would run), and with AVX-512 BF16's bf16 kernels where the CPU has them but
/// prefers widening (`CpuFeatures::vdpbf16ps_fast`). Tests hold each against the reference.
pub fn variants() -> Vec<Kernels> {
    let mut out = Vec::new();
    let cpu = *cpu_features();
    let mut features = vec![cpu];
    if cpu.avx512bf16 && !cpu.vdpbf16ps_fast {
        features.push(CpuFeatures {
            vdpbf16ps_fast: true,
            ..cpu
        });
    }
    for isa in supported_isas() {
        for (f, dot) in features.iter().flat_map(|f| [(f, true), (f, false)]) {
            if let Ok(k) = Kernels::build_with(f, isa, dot) {
                if !out
                    .iter()
                    .any(|o: &Kernels| o.isa == k.isa && o.int8 == k.int8 && o.bf16 == k.bf16)
                {
                    out.push(k);
                }
            }
        }
    }
    out
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

/// An int8 GEMM path on `$d`'s `MR x NV` microkernels (`MRG` rows with activation groups,
/// `SMALL` for a grouped GEMM of a few rows, `TAIL` for a block's last few: [`gemm::gemm_i8`]):
/// the entry `$gemm` and `$shared`, its two stages ([`SharedGemm`]), on the same kernels and
/// packing.
macro_rules! int8_path {
    ($gemm:ident, $shared:ident, $features:literal, [$d:ty; $mr:tt x $nv:tt, grouped $mrg:tt, small $small:tt, tail $tail:tt]) => {
        simd_entry!($gemm, $features, [$d, $mr, $nv, $mrg, $small, $tail], gemm::gemm_i8, (p: Gemm<'_>, s: &mut GemmScratch));
        const $shared: SharedGemm = {
            simd_entry!(pack, $features, [$d, $mr, $mrg, $small, $tail], gemm::pack_i8, (p: &Gemm<'_>, rows: std::ops::Range<usize>, out: PackedAMut<'_>, tmp: &mut PackTmp));
            simd_entry!(compute_i8, $features, [$d, $mr, $nv, $mrg, $small, $tail], gemm::gemm_i8_packed, (p: Gemm<'_>, a: &PackedA));
            // int8 weights need no spill.
            fn compute(p: Gemm<'_>, a: &PackedA, _spill: &mut Vec<f32>) {
                compute_i8(p, a)
            }
            SharedGemm { mr: $mr, mr_grouped: $mrg, mr_small: $small, bf16_words: 1, pack, compute }
        };
    };
}

/// A bf16 GEMM path on `$d`'s `MR x NV` microkernels (`TAIL` rows for a block's last few:
/// [`gemm::gemm_bf16`]), as [`int8_path`].
macro_rules! bf16_path {
    ($gemm:ident, $shared:ident, $features:literal, [$d:ty; $mr:literal x $nv:literal, tail $tail:literal]) => {
        simd_entry!($gemm, $features, [$d, $mr, $nv, $tail], gemm::gemm_bf16, (p: Gemm<'_>, s: &mut GemmScratch));
        const $shared: SharedGemm = {
            simd_entry!(pack, $features, [$d, $mr, $tail], gemm::pack_bf16, (p: &Gemm<'_>, rows: std::ops::Range<usize>, out: PackedAMut<'_>, tmp: &mut PackTmp));
            simd_entry!(compute, $features, [$d, $mr, $nv, $tail], gemm::gemm_bf16_packed, (p: Gemm<'_>, a: &PackedA, spill: &mut Vec<f32>));
            SharedGemm { mr: $mr, mr_grouped: $mr, mr_small: 0, bf16_words: <$d as crate::simd::DotBf16>::A_WORDS, pack, compute }
        };
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::gemm::amx::{VNNI_MR, VNNI_MRG, VNNI_NV, VNNI_SMALL, VNNI_TAIL};
    use crate::simd::avx2::{Avx2, Avx2Madd, AvxVnni};
    use crate::simd::avx512::{Avx512, Avx512Bf16, Avx512Vnni};
    use crate::simd::Widen;
    use std::ops::Range;

    simd_entry!(layer_norm_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], elementwise::layer_norm, (p: LayerNormRows<'_>));
    simd_entry!(softmax_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], elementwise::softmax, (x: &mut [f32]));
    simd_entry!(gelu_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], elementwise::gelu, (x: &mut [f32]));
    simd_entry!(gemm_f32_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512, f32, 8, 2, 4], gemm::gemm_float, (p: Gemm<'_>, s: &mut GemmScratch));
    simd_entry!(gemm_f16_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512, f16, 8, 2, 4], gemm::gemm_float, (p: Gemm<'_>, s: &mut GemmScratch));
    int8_path!(gemm_i8_avx512_vnni, SHARED_I8_AVX512_VNNI, "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c", [Avx512Vnni; VNNI_MR x VNNI_NV, grouped VNNI_MRG, small VNNI_SMALL, tail VNNI_TAIL]);
    bf16_path!(gemm_bf16_avx512_bf16, SHARED_BF16_AVX512_BF16, "avx512f,avx512bw,avx512vl,avx512bf16,fma,f16c", [Avx512Bf16; 8 x 2, tail 4]);
    bf16_path!(gemm_bf16_avx512, SHARED_BF16_AVX512, "avx512f,avx512bw,avx512vl,fma,f16c", [Widen<Avx512>; 8 x 2, tail 4]);
    bf16_path!(gemm_bf16_avx2, SHARED_BF16_AVX2, "avx2,fma,f16c", [Widen<Avx2>; 4 x 2, tail 2]);
    simd_entry!(gemm_f32_avx2, "avx2,fma,f16c", [Avx2, f32, 6, 2, 3], gemm::gemm_float, (p: Gemm<'_>, s: &mut GemmScratch));
    simd_entry!(gemm_f16_avx2, "avx2,fma,f16c", [Avx2, f16, 6, 2, 3], gemm::gemm_float, (p: Gemm<'_>, s: &mut GemmScratch));
    int8_path!(gemm_i8_avx_vnni, SHARED_I8_AVX_VNNI, "avx2,fma,f16c,avxvnni", [AvxVnni; 6 x 2, grouped 6, small 0, tail 3]);
    int8_path!(gemm_i8_avx2, SHARED_I8_AVX2, "avx2,fma,f16c", [Avx2Madd; 4 x 2, grouped 2, small 0, tail 0]);
    simd_entry!(quantize_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], quant::quantize_row_asym_simd, (s: &[f32], d: &mut [u8]) -> (f32, i32));
    simd_entry!(attention_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Avx512], attention::attention, (p: AttentionHead<'_>, s: &mut AttentionScratch));
    simd_entry!(attention_avx2, "avx2,fma,f16c", [Avx2], attention::attention, (p: AttentionHead<'_>, s: &mut AttentionScratch));
    simd_entry!(attention_bf16_avx512_bf16, "avx512f,avx512bw,avx512vl,avx512bf16,fma,f16c", [Avx512Bf16], attention::attention_bf16, (p: AttentionHead<'_>, s: &mut AttentionScratch));
    simd_entry!(attention_bf16_avx512, "avx512f,avx512bw,avx512vl,fma,f16c", [Widen<Avx512>], attention::attention_bf16, (p: AttentionHead<'_>, s: &mut AttentionScratch));
    simd_entry!(attention_bf16_avx2, "avx2,fma,f16c", [Widen<Avx2>], attention::attention_bf16, (p: AttentionHead<'_>, s: &mut AttentionScratch));
    simd_entry!(layer_norm_avx2, "avx2,fma,f16c", [Avx2], elementwise::layer_norm, (p: LayerNormRows<'_>));
    simd_entry!(softmax_avx2, "avx2,fma,f16c", [Avx2], elementwise::softmax, (x: &mut [f32]));
    simd_entry!(gelu_avx2, "avx2,fma,f16c", [Avx2], elementwise::gelu, (x: &mut [f32]));
    simd_entry!(quantize_avx2, "avx2,fma,f16c", [Avx2], quant::quantize_row_asym_simd, (s: &[f32], d: &mut [u8]) -> (f32, i32));

    fn f16_to_f32_avx512(s: &[f16], d: &mut [f32]) {
        // SAFETY: installed only by `Kernels::for_isa(Isa::Avx512)`, after detection.
        unsafe { convert::x86::f16_to_f32_avx512(s, d) }
    }

    fn f16_to_f32_f16c(s: &[f16], d: &mut [f32]) {
        // SAFETY: installed only by `Kernels::for_isa(Isa::Avx2 | Isa::Avx512)`, after detection
        // (both require AVX2 and F16C).
        unsafe { convert::x86::f16_to_f32_f16c(s, d) }
    }

    /// An AMX entry: `$f` (a tile GEMM of `gemm::amx`) with its row threshold, compiled with
    /// the AVX-512 features its fallbacks need.
    macro_rules! amx_entry {
        ($entry:ident, $f:ident, $min_rows:ident $(, [$g:ty])?) => {
            fn $entry(p: Gemm<'_>, s: &mut GemmScratch) {
                #[target_feature(
                    enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c"
                )]
                unsafe fn inner(p: Gemm<'_>, s: &mut GemmScratch) {
                    // SAFETY: AMX is enabled and the features are enabled here (the caller's
                    // contract below).
                    unsafe { gemm::amx::$f$(::<$g>)?(p, s, $min_rows()) }
                }
                // SAFETY: reachable only through a table built by `Kernels::for_isa(Isa::Amx)`,
                // which checked that the CPU has these features and that AMX is enabled for the
                // process (`CpuFeatures::supports`).
                unsafe { inner(p, s) }
            }
        };
    }
    // The thresholds: `Kernels::build` checked that `amx_min_rows` is Ok before installing
    // these entries, so the defaults are never taken here.
    fn rows_i8() -> usize {
        gemm::amx_min_rows().map_or(gemm::AMX_MIN_ROWS_I8, |r| r.0)
    }
    fn rows_bf16() -> usize {
        gemm::amx_min_rows().map_or(gemm::AMX_MIN_ROWS_BF16, |r| r.1)
    }
    amx_entry!(gemm_i8_amx, gemm_i8_amx, rows_i8);

    /// The int8 tiles' two stages ([`SharedGemm`]): A packed in whole tiles of 16 rows (the
    /// VNNI fallback's micro-panels of 8 and 4 rows divide them), then the tiles (or VNNI)
    /// over it, with the same row threshold as [`gemm_i8_amx`].
    const SHARED_I8_AMX: SharedGemm = {
        fn pack(p: &Gemm<'_>, rows: Range<usize>, out: PackedAMut<'_>, tmp: &mut PackTmp) {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
            unsafe fn inner(p: &Gemm<'_>, r: Range<usize>, o: PackedAMut<'_>, t: &mut PackTmp) {
                // SAFETY: the features are enabled here (the caller's contract below).
                unsafe { gemm::amx::pack_i8_amx(p, r, o, t, rows_i8()) }
            }
            // SAFETY: reachable only through a table built by `Kernels::for_isa(Isa::Amx)`,
            // which checked that the CPU has these features.
            unsafe { inner(p, rows, out, tmp) }
        }
        fn compute(p: Gemm<'_>, a: &PackedA, _spill: &mut Vec<f32>) {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
            unsafe fn inner(p: Gemm<'_>, a: &PackedA) {
                // SAFETY: AMX is enabled and the features are enabled here (the caller's
                // contract below).
                unsafe { gemm::amx::gemm_i8_amx_packed(p, a, rows_i8()) }
            }
            // SAFETY: reachable only through a table built by `Kernels::for_isa(Isa::Amx)`,
            // which checked that the CPU has these features and that AMX is enabled for the
            // process.
            unsafe { inner(p, a) }
        }
        SharedGemm {
            mr: 16,
            mr_grouped: 16,
            mr_small: 0,
            bf16_words: 1,
            pack,
            compute,
        }
    };
    // The bf16 tiles with the AVX-512 fallback the CPU prefers (`vdpbf16ps_fast`).
    amx_entry!(gemm_bf16_amx, gemm_bf16_amx, rows_bf16, [Avx512Bf16]);
    amx_entry!(
        gemm_bf16_amx_widened,
        gemm_bf16_amx,
        rows_bf16,
        [Widen<Avx512>]
    );

    /// bf16 attention on the tiles, for sequences of at least the bf16 threshold's tokens (the
    /// rows of its `Q K^T` and `P V`), else on AVX-512 through `$d`.
    macro_rules! attention_amx_entry {
        ($entry:ident, $d:ty) => {
            fn $entry(p: AttentionHead<'_>, s: &mut AttentionScratch) {
                #[target_feature(
                    enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c"
                )]
                unsafe fn inner(p: AttentionHead<'_>, s: &mut AttentionScratch) {
                    // SAFETY: AMX is enabled and the features are enabled here (the caller's
                    // contract below).
                    unsafe { attention::amx::attention_bf16_amx::<$d>(p, s, rows_bf16()) }
                }
                // SAFETY: reachable only through a table built by `Kernels::for_isa(Isa::Amx)`,
                // which checked that the CPU has these features and that AMX is enabled for the
                // process.
                unsafe { inner(p, s) }
            }
        };
    }
    attention_amx_entry!(attention_bf16_amx, Avx512Bf16);
    attention_amx_entry!(attention_bf16_amx_widened, Widen<Avx512>);

    /// AMX: AVX-512's table with the int8 and bf16 GEMMs and bf16 attention on the tiles (which
    /// fall back by shape to VNNI, and to AVX-512 BF16 or, where the CPU issues `vdpbf16ps`
    /// slower than FMAs, as Intel's do, to the widened kernels). The optional extensions always
    /// come with AMX, so `dot` does not apply.
    pub(super) fn install_amx(k: &mut Kernels, f: &CpuFeatures, _dot: bool) {
        install_avx512(k, f, true);
        k.int8 = "amx-int8";
        k.gemm_i8 = gemm_i8_amx;
        k.shared_i8 = Some(SHARED_I8_AMX);
        k.bf16 = "amx-bf16";
        // bf16 on the tiles packs A in its own calls only: rounding to bf16 costs little
        // against int8's quantisation, and the tiles' rows and the widened fallback's
        // micro-panels take different room a row, which one packing's layout cannot hold.
        k.shared_bf16 = None;
        if f.vdpbf16ps_fast {
            k.gemm_bf16 = gemm_bf16_amx;
            k.attention_bf16 = attention_bf16_amx;
        } else {
            k.gemm_bf16 = gemm_bf16_amx_widened;
            k.attention_bf16 = attention_bf16_amx_widened;
        }
    }

    /// AVX-512 without VNNI (Skylake-SP) takes the AVX2 int8 kernel its AVX2 table would.
    pub(super) fn install_avx512(k: &mut Kernels, f: &CpuFeatures, dot: bool) {
        install_avx2(k, f, dot);
        if dot && f.avx512vnni {
            k.int8 = "avx512-vnni";
            k.gemm_i8 = gemm_i8_avx512_vnni;
            k.shared_i8 = Some(SHARED_I8_AVX512_VNNI);
        }
        if dot && f.avx512bf16 && f.vdpbf16ps_fast {
            k.bf16 = "avx512-bf16";
            k.gemm_bf16 = gemm_bf16_avx512_bf16;
            k.shared_bf16 = Some(SHARED_BF16_AVX512_BF16);
            k.attention_bf16 = attention_bf16_avx512_bf16;
        } else {
            k.gemm_bf16 = gemm_bf16_avx512;
            k.shared_bf16 = Some(SHARED_BF16_AVX512);
            k.attention_bf16 = attention_bf16_avx512;
        }
        k.gemm_f16 = gemm_f16_avx512;
        k.f16_to_f32 = f16_to_f32_avx512;
        k.quantize_row_asym = quantize_avx512;
        k.attention = attention_avx512;
        k.layer_norm = layer_norm_avx512;
        k.softmax = softmax_avx512;
        k.gelu = gelu_avx512;
        k.gemm_f32 = gemm_f32_avx512;
    }

    pub(super) fn install_avx2(k: &mut Kernels, f: &CpuFeatures, dot: bool) {
        if dot && f.avx_vnni {
            k.int8 = "avx-vnni";
            k.gemm_i8 = gemm_i8_avx_vnni;
            k.shared_i8 = Some(SHARED_I8_AVX_VNNI);
        } else {
            k.int8 = "avx2";
            k.gemm_i8 = gemm_i8_avx2;
            k.shared_i8 = Some(SHARED_I8_AVX2);
        }
        k.bf16 = "widened";
        k.gemm_bf16 = gemm_bf16_avx2;
        k.shared_bf16 = Some(SHARED_BF16_AVX2);
        k.attention_bf16 = attention_bf16_avx2;
        k.gemm_f16 = gemm_f16_avx2;
        k.f16_to_f32 = f16_to_f32_f16c;
        k.quantize_row_asym = quantize_avx2;
        k.attention = attention_avx2;
        k.layer_norm = layer_norm_avx2;
        k.softmax = softmax_avx2;
        k.gelu = gelu_avx2;
        k.gemm_f32 = gemm_f32_avx2;
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::*;
    use crate::simd::neon::{Neon, NeonDot, NeonMull};
    use crate::simd::Widen;

    simd_entry!(layer_norm_neon, "neon", [Neon], elementwise::layer_norm, (p: LayerNormRows<'_>));
    simd_entry!(softmax_neon, "neon", [Neon], elementwise::softmax, (x: &mut [f32]));
    simd_entry!(gelu_neon, "neon", [Neon], elementwise::gelu, (x: &mut [f32]));
    simd_entry!(gemm_f32_neon, "neon", [Neon, f32, 6, 4, 0], gemm::gemm_float, (p: Gemm<'_>, s: &mut GemmScratch));
    simd_entry!(gemm_f16_neon, "neon", [Neon, f16, 6, 4, 0], gemm::gemm_float, (p: Gemm<'_>, s: &mut GemmScratch));
    int8_path!(gemm_i8_neon_dot, SHARED_I8_NEON_DOT, "neon,dotprod", [NeonDot; 6 x 4, grouped 3, small 0, tail 0]);
    bf16_path!(gemm_bf16_neon, SHARED_BF16_NEON, "neon", [Widen<Neon>; 4 x 4, tail 0]);
    int8_path!(gemm_i8_neon, SHARED_I8_NEON, "neon", [NeonMull; 6 x 4, grouped 2, small 0, tail 0]);
    simd_entry!(quantize_neon, "neon", [Neon], quant::quantize_row_asym_simd, (s: &[f32], d: &mut [u8]) -> (f32, i32));
    simd_entry!(attention_neon, "neon", [Neon], attention::attention, (p: AttentionHead<'_>, s: &mut AttentionScratch));
    simd_entry!(attention_bf16_neon, "neon", [Widen<Neon>], attention::attention_bf16, (p: AttentionHead<'_>, s: &mut AttentionScratch));

    /// The f16 slice conversion stays on the reference: `half` already converts with the
    /// hardware's `fcvt` on aarch64 CPUs that have fp16 (the GEMM widens with `fcvtl`).
    pub(super) fn install_neon(k: &mut Kernels, f: &CpuFeatures, dot: bool) {
        if dot && f.dotprod {
            k.int8 = "neon-dotprod";
            k.gemm_i8 = gemm_i8_neon_dot;
            k.shared_i8 = Some(SHARED_I8_NEON_DOT);
        } else {
            k.int8 = "neon";
            k.gemm_i8 = gemm_i8_neon;
            k.shared_i8 = Some(SHARED_I8_NEON);
        }
        k.bf16 = "widened";
        k.gemm_bf16 = gemm_bf16_neon;
        k.shared_bf16 = Some(SHARED_BF16_NEON);
        k.attention_bf16 = attention_bf16_neon;
        k.gemm_f16 = gemm_f16_neon;
        k.quantize_row_asym = quantize_neon;
        k.attention = attention_neon;
        k.layer_norm = layer_norm_neon;
        k.softmax = softmax_neon;
        k.gelu = gelu_neon;
        k.gemm_f32 = gemm_f32_neon;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amx::{support_with, AmxSupport};
    use crate::gemm::{Epilogue, MatMut, PackedI8Buf};

    /// AVX-512's bf16 kernels follow `vdpbf16ps_fast` (the widened ones where `vdpbf16ps` is
    /// the slower), and `variants()` holds both kinds wherever the CPU has AVX-512 BF16, so
    /// that the tests run the kernels another CPU would prefer.
    #[test]
    fn bf16_kernels_follow_the_preference() {
        let cpu = *cpu_features();
        assert!(!cpu.vdpbf16ps_fast || cpu.avx512bf16, "{cpu:?}");
        if !(cpu.supports(Isa::Avx512) && cpu.avx512bf16) {
            return;
        }
        for (fast, want) in [(true, "avx512-bf16"), (false, "widened")] {
            let f = CpuFeatures {
                vdpbf16ps_fast: fast,
                ..cpu
            };
            let k = Kernels::build_with(&f, Isa::Avx512, true).expect("AVX-512 builds");
            assert_eq!(k.bf16, want);
            assert!(
                variants()
                    .iter()
                    .any(|v| v.isa == Isa::Avx512 && v.bf16 == want),
                "variants() lacks AVX-512 {want}"
            );
        }
    }

    /// A process the OS refuses AMX gets AVX-512's table (VNNI and AVX-512 BF16 where the CPU
    /// has them), `BERTH_ISA=amx` is an error rather than a silent fallback, and the int8 GEMM
    /// of that table runs and agrees with the reference. The refusal is simulated: this CPU's
    /// features with the permission request answering EPERM.
    #[test]
    fn refused_amx_permission_falls_back() {
        const EPERM: i32 = 1;
        let mut f = *cpu_features();
        f.amx = support_with(true, || Err(EPERM)) == AmxSupport::Enabled;
        assert!(!f.amx && !f.supports(Isa::Amx));
        let best = crate::isa::resolve(&f, None).expect("no request");
        assert_ne!(best, Isa::Amx);
        assert!(matches!(
            crate::isa::resolve(&f, Some("amx")),
            Err(IsaError::Unsupported {
                requested: Isa::Amx,
                ..
            })
        ));
        let k = Kernels::build_with(&f, best, true).expect("the best path builds");
        assert!(k.int8 != "amx-int8" && k.bf16 != "amx-bf16", "{k:?}");
        if f.supports(Isa::Avx512) && f.avx512vnni {
            assert_eq!(k.int8, "avx512-vnni");
        }
        let (m, n, kk) = (32, 40, 128);
        let a: Vec<f32> = (0..m * kk)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
            .collect();
        let w: Vec<f32> = (0..n * kk)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 16.0)
            .collect();
        let q = PackedI8Buf::quantize(&w, n, kk);
        let run = |t: &Kernels| {
            let mut c = vec![0.0f32; m * n];
            t.gemm(
                Gemm {
                    k: kk,
                    a: &a,
                    lda: kk,
                    w: Weights::I8(q.view()),
                    bias: None,
                    epilogue: Epilogue::None,
                    c: MatMut::new(&mut c, m, n, n),
                },
                &mut GemmScratch::default(),
            );
            c
        };
        let (got, want) = (run(&k), run(&Kernels::REFERENCE));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }
}
