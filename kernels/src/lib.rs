//! Numeric kernels for berth. This crate knows nothing of BERT: it converts, quantises and
//! (as the kernels land) multiplies and normalises slices of numbers.
//!
//! Every routine here has a scalar definition that is the reference ("twin") for any SIMD
//! version added later; `docs/KERNELS.md` states each contract. The instruction-set path is
//! chosen at run time by [`isa`], never at compile time only.

pub mod amx;
pub mod attention;
pub mod convert;
pub mod dispatch;
pub mod elementwise;
pub mod gemm;
pub mod isa;
pub mod peak;
pub mod quant;
mod simd;
#[cfg(target_arch = "x86_64")]
mod tiles;
pub mod tolerance;

/// The kernel tests' shared helpers (a file of `kernels/tests`), for the unit tests of the AMX
/// kernels too.
#[cfg(all(test, target_arch = "x86_64"))]
#[path = "../tests/common/mod.rs"]
mod test_common;

pub use dispatch::{kernels, supported_isas, variants, Kernels};
pub use isa::{CpuFeatures, Isa, IsaError};
