//! Run-time CPU detection and the `BERTH_ISA` override.
//!
//! The CPU is probed once. The instruction-set path that kernels dispatch to is the best one the
//! CPU supports, unless the environment variable `BERTH_ISA` names a lower one
//! (`amx`, `avx512`, `avx2`, `neon`, `scalar`): tests and CI use it to run every path this
//! machine can run. Asking for a path the CPU cannot run, or naming an unknown one, is an error
//! rather than a silent fallback, so that a CI job meant to test AVX2 cannot quietly test scalar
//! code instead.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that forces a lower instruction-set path.
pub const ISA_ENV: &str = "BERTH_ISA";

/// The environment variable that overrides the fewest rows (M) for which the AMX path runs
/// a GEMM on the tiles rather than on AVX-512 (`gemm::AMX_MIN_ROWS_I8` and `_BF16`): for
/// measuring the tiles at every M, and for tuning on other CPUs.
pub const AMX_ROWS_ENV: &str = "BERTH_AMX_MIN_ROWS";

/// An instruction-set path. Ordered within an architecture: a later variant is a superset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, no SIMD intrinsics. Always available.
    Scalar,
    /// aarch64 Advanced SIMD.
    Neon,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// x86-64 AVX-512 F, BW, VL (with FMA and F16C).
    Avx512,
    /// AVX-512 (with VNNI and BF16) plus Intel AMX tiles (AMX-TILE, AMX-INT8, AMX-BF16), the
    /// OS's tile state and its permission to use it ([`crate::amx`]): the int8 and bf16 GEMMs
    /// of large enough shapes run on the tiles, everything else as on `Avx512`.
    Amx,
}

impl Isa {
    /// The name `BERTH_ISA` uses for this path.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Neon => "neon",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Amx => "amx",
        }
    }

    /// Parses a `BERTH_ISA` value (case-insensitive, surrounding whitespace ignored).
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "neon" => Some(Isa::Neon),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            "amx" => Some(Isa::Amx),
            _ => None,
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an ISA request could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    /// `BERTH_ISA` holds a name that is not a path.
    #[error("{ISA_ENV}={value:?} is not one of amx, avx512, avx2, neon, scalar")]
    Unknown {
        /// The value found in the environment.
        value: String,
    },
    /// `BERTH_AMX_MIN_ROWS` is not a whole number of rows.
    #[error("{AMX_ROWS_ENV}={value:?} is not a whole number of rows")]
    AmxRows {
        /// The value found in the environment.
        value: String,
    },
    /// `BERTH_ISA` names a path this CPU cannot run.
    #[error("{ISA_ENV}={requested} but this CPU supports at most {best}")]
    Unsupported {
        /// The path asked for.
        requested: Isa,
        /// The best path the CPU supports.
        best: Isa,
    },
}

/// The CPU features berth's kernels care about, probed at run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    pub avx2: bool,
    pub fma: bool,
    pub f16c: bool,
    pub avx_vnni: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512vnni: bool,
    pub avx512bf16: bool,
    /// AVX-512 BF16's `vdpbf16ps` outruns two FMAs a pair of k, so the bf16 GEMM and attention
    /// use it; where it does not they widen bf16 to f32 and use FMAs. Not a capability but a
    /// preference, by vendor: Intel's cores (Sapphire and Emerald Rapids, measured: 86 GFLOP/s
    /// per core against 175 for FMAs; Cooper Lake and Granite Rapids assumed alike) issue it
    /// at half the FMAs' rate, AMD's Zen 4 at twice (234 against 117).
    pub vdpbf16ps_fast: bool,
    pub avx512fp16: bool,
    pub neon: bool,
    pub dotprod: bool,
    /// AMX tiles usable: the CPU has AMX-TILE, AMX-INT8 and AMX-BF16, the OS enabled the tile
    /// state, and (Linux) granted this process its permission ([`crate::amx::support`]).
    pub amx: bool,
}

impl CpuFeatures {
    /// Probes the running CPU (and, through std's detection, the OS's support for the wider
    /// register state).
    pub fn detect() -> CpuFeatures {
        #[allow(unused_mut)]
        let mut f = CpuFeatures::default();
        #[cfg(target_arch = "x86_64")]
        {
            f.avx2 = std::arch::is_x86_feature_detected!("avx2");
            f.fma = std::arch::is_x86_feature_detected!("fma");
            f.f16c = std::arch::is_x86_feature_detected!("f16c");
            f.avx_vnni = std::arch::is_x86_feature_detected!("avxvnni");
            f.avx512f = std::arch::is_x86_feature_detected!("avx512f");
            f.avx512bw = std::arch::is_x86_feature_detected!("avx512bw");
            f.avx512vl = std::arch::is_x86_feature_detected!("avx512vl");
            f.avx512vnni = std::arch::is_x86_feature_detected!("avx512vnni");
            f.avx512bf16 = std::arch::is_x86_feature_detected!("avx512bf16");
            f.vdpbf16ps_fast = f.avx512bf16 && !is_intel();
            f.avx512fp16 = std::arch::is_x86_feature_detected!("avx512fp16");
            f.amx = crate::amx::support() == crate::amx::AmxSupport::Enabled;
        }
        #[cfg(target_arch = "aarch64")]
        {
            f.neon = std::arch::is_aarch64_feature_detected!("neon");
            f.dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
        }
        f
    }

    /// The best path these features allow.
    pub fn best_isa(&self) -> Isa {
        if self.supports(Isa::Amx) {
            Isa::Amx
        } else if self.supports(Isa::Avx512) {
            Isa::Avx512
        } else if self.avx2 && self.fma && self.f16c {
            Isa::Avx2
        } else if self.neon {
            Isa::Neon
        } else {
            Isa::Scalar
        }
    }

    /// Whether this CPU can run `isa`.
    pub fn supports(&self, isa: Isa) -> bool {
        match isa {
            Isa::Scalar => true,
            Isa::Neon => self.neon,
            Isa::Avx2 => self.avx2 && self.fma && self.f16c,
            Isa::Avx512 => self.avx512f && self.avx512bw && self.avx512vl && self.fma && self.f16c,
            // The tile GEMMs fall back to VNNI and AVX-512 BF16 for the shapes tiles do not pay
            // on, so those come with it (every CPU with AMX has them).
            Isa::Amx => {
                self.amx && self.supports(Isa::Avx512) && self.avx512vnni && self.avx512bf16
            }
        }
    }
}

/// Whether CPUID's vendor string is "GenuineIntel" (EBX, EDX, ECX of leaf 0).
#[cfg(target_arch = "x86_64")]
fn is_intel() -> bool {
    let v = std::arch::x86_64::__cpuid_count(0, 0);
    (v.ebx, v.edx, v.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
}

/// The features of this CPU, probed once.
pub fn cpu_features() -> &'static CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    FEATURES.get_or_init(CpuFeatures::detect)
}

/// Resolves a request (the value of `BERTH_ISA`, if set) against what `features` supports.
/// An empty value means no request.
pub fn resolve(features: &CpuFeatures, request: Option<&str>) -> Result<Isa, IsaError> {
    let best = features.best_isa();
    let Some(value) = request.filter(|v| !v.trim().is_empty()) else {
        return Ok(best);
    };
    let requested = Isa::parse(value).ok_or_else(|| IsaError::Unknown {
        value: value.to_owned(),
    })?;
    if features.supports(requested) {
        Ok(requested)
    } else {
        Err(IsaError::Unsupported { requested, best })
    }
}

/// The path kernels run on in this process: the CPU's best, or `BERTH_ISA`'s choice. Read once.
pub fn selected() -> Result<Isa, IsaError> {
    static SELECTED: OnceLock<Result<Isa, IsaError>> = OnceLock::new();
    SELECTED
        .get_or_init(|| {
            let request = std::env::var(ISA_ENV).ok();
            resolve(cpu_features(), request.as_deref())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avx512_cpu() -> CpuFeatures {
        CpuFeatures {
            avx2: true,
            fma: true,
            f16c: true,
            avx512f: true,
            avx512bw: true,
            avx512vl: true,
            ..CpuFeatures::default()
        }
    }

    #[test]
    fn no_request_gives_best() {
        assert_eq!(resolve(&avx512_cpu(), None), Ok(Isa::Avx512));
        assert_eq!(resolve(&avx512_cpu(), Some(" ")), Ok(Isa::Avx512));
        assert_eq!(resolve(&CpuFeatures::default(), None), Ok(Isa::Scalar));
    }

    #[test]
    fn lower_paths_can_be_forced() {
        let cpu = avx512_cpu();
        assert_eq!(resolve(&cpu, Some("avx2")), Ok(Isa::Avx2));
        assert_eq!(resolve(&cpu, Some("SCALAR")), Ok(Isa::Scalar));
        assert_eq!(resolve(&cpu, Some("avx512")), Ok(Isa::Avx512));
    }

    #[test]
    fn impossible_or_unknown_requests_are_errors() {
        let cpu = CpuFeatures {
            avx2: true,
            fma: true,
            f16c: true,
            ..CpuFeatures::default()
        };
        assert_eq!(
            resolve(&cpu, Some("avx512")),
            Err(IsaError::Unsupported {
                requested: Isa::Avx512,
                best: Isa::Avx2
            })
        );
        assert_eq!(
            resolve(&cpu, Some("neon")),
            Err(IsaError::Unsupported {
                requested: Isa::Neon,
                best: Isa::Avx2
            })
        );
        assert!(matches!(
            resolve(&cpu, Some("sse9")),
            Err(IsaError::Unknown { .. })
        ));
    }

    #[test]
    fn avx512_needs_bw_and_vl() {
        let mut cpu = avx512_cpu();
        cpu.avx512bw = false;
        assert_eq!(cpu.best_isa(), Isa::Avx2);
    }

    /// AMX is a path of its own only with the tiles enabled and AVX-512 with VNNI and BF16
    /// beside them (its fallbacks); without the permission it is not offered at all.
    #[test]
    fn amx_needs_permission_and_its_fallbacks() {
        let mut cpu = CpuFeatures {
            avx512vnni: true,
            avx512bf16: true,
            amx: true,
            ..avx512_cpu()
        };
        assert_eq!(cpu.best_isa(), Isa::Amx);
        assert_eq!(resolve(&cpu, Some("avx512")), Ok(Isa::Avx512));
        assert_eq!(resolve(&cpu, Some("AMX")), Ok(Isa::Amx));
        cpu.avx512bf16 = false;
        assert_eq!(cpu.best_isa(), Isa::Avx512);
        cpu.avx512bf16 = true;
        cpu.amx = false;
        assert_eq!(cpu.best_isa(), Isa::Avx512);
        assert_eq!(
            resolve(&cpu, Some("amx")),
            Err(IsaError::Unsupported {
                requested: Isa::Amx,
                best: Isa::Avx512
            })
        );
    }

    /// The selected path honours `BERTH_ISA` in this very process: CI runs the suite once per
    /// forced path, and this fails if the variable was set but not obeyed.
    #[test]
    fn selected_matches_environment() {
        let selected = selected();
        match std::env::var(ISA_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                assert_eq!(
                    selected,
                    Ok(Isa::parse(&v).expect("CI sets a known BERTH_ISA"))
                )
            }
            _ => assert_eq!(selected, Ok(cpu_features().best_isa())),
        }
    }
}
