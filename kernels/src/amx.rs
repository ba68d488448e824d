//! Intel AMX (Advanced Matrix Extensions): whether this process may use the tiles.
//!
//! Three things must hold before the first tile instruction, or it faults:
//! 1. the CPU has AMX-TILE, AMX-INT8 and AMX-BF16 (CPUID leaf 7, EDX bits 24, 25 and 22) with
//!    the tile shape the kernels assume (leaf 0x1D palette 1: at least 8 tiles of 16 rows of
//!    64 bytes);
//! 2. the OS saves the tile state (XCR0 bits 17 and 18, XTILECFG and XTILEDATA);
//! 3. on Linux, the process asked for it: the kernel leaves the 8 KiB tile state out of every
//!    thread's signal frame until `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`
//!    grants it, and until then traps the first tile instruction with SIGILL.
//!
//! [`support`] checks the first two and makes the request once per process; any failure (an
//! older kernel answers `EINVAL`, a seccomp filter or a full signal stack `EPERM`/`ENOSPC`)
//! leaves AMX off and the kernels on VNNI and AVX-512 BF16, never an error.
//! [`support_with`] takes the request as a function, so that tests can refuse it.

use std::sync::OnceLock;

/// What this process may do with AMX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmxSupport {
    /// The CPU lacks AMX (or the tile shape the kernels need), or the OS does not save the tile
    /// state, or this is not x86-64.
    Absent,
    /// The CPU and OS have it, but the OS refused this process the permission (the error
    /// number it returned).
    Refused(i32),
    /// The tiles may be used, by every thread of the process.
    Enabled,
}

/// Whether the CPU has AMX-TILE, AMX-INT8 and AMX-BF16 with at least 8 tiles of 16 rows of 64
/// bytes, and the OS saves the tile state (XCR0). No permission is asked for.
pub fn cpu_has_amx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::cpu_has_amx()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Asks the OS to let this process use the tile data (Linux `arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`); the error number on refusal. Granting is idempotent and
/// process-wide. Other systems need no request (Windows enables AMX for every process) but
/// berth only asks on Linux: elsewhere this reports `ENOSYS` and AMX stays off.
pub fn request_permission() -> Result<(), i32> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        x86::request_xtiledata()
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        const ENOSYS: i32 = 38;
        Err(ENOSYS)
    }
}

/// [`support`] with the CPU's answer and the request given: AMX is enabled only if the CPU has
/// it and the request succeeds (the request is not made when the CPU lacks it).
pub fn support_with(cpu_has: bool, request: impl FnOnce() -> Result<(), i32>) -> AmxSupport {
    if !cpu_has {
        return AmxSupport::Absent;
    }
    match request() {
        Ok(()) => AmxSupport::Enabled,
        Err(errno) => AmxSupport::Refused(errno),
    }
}

/// Whether this process may use AMX: probed, and the permission requested, once.
pub fn support() -> AmxSupport {
    static SUPPORT: OnceLock<AmxSupport> = OnceLock::new();
    *SUPPORT.get_or_init(|| support_with(cpu_has_amx(), request_permission))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::__cpuid_count;

    pub(super) fn cpu_has_amx() -> bool {
        if __cpuid_count(0, 0).eax < 0x1d {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        let (bf16, tile, int8) = (edx >> 22 & 1, edx >> 24 & 1, edx >> 25 & 1);
        if bf16 & tile & int8 == 0 {
            return false;
        }
        // Palette 1's limits: bytes per row (EBX 15:0), tile names (EBX 31:16), rows (ECX 15:0).
        let palette = __cpuid_count(0x1d, 1);
        let (row_bytes, names, rows) = (
            palette.ebx & 0xffff,
            palette.ebx >> 16,
            palette.ecx & 0xffff,
        );
        if row_bytes < 64 || names < 8 || rows < 16 {
            return false;
        }
        // XGETBV faults unless the OS enabled XSAVE (CPUID.1:ECX.OSXSAVE, bit 27).
        if __cpuid_count(1, 0).ecx >> 27 & 1 == 0 {
            return false;
        }
        let (lo, _hi): (u32, u32);
        // SAFETY: XGETBV with ECX = 0 reads XCR0; OSXSAVE (checked above) makes it legal at any
        // privilege level. It touches no memory and no flags.
        unsafe {
            std::arch::asm!(
                "xgetbv",
                in("ecx") 0u32,
                out("eax") lo,
                out("edx") _hi,
                options(nomem, nostack, preserves_flags)
            )
        };
        // XTILECFG (bit 17) and XTILEDATA (bit 18).
        lo & (3 << 17) == 3 << 17
    }

    #[cfg(target_os = "linux")]
    pub(super) fn request_xtiledata() -> Result<(), i32> {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: the arch_prctl system call with an integer request and argument: it reads
        // and writes no user memory; the kernel clobbers RCX and R11, declared here.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            )
        };
        if ret == 0 {
            Ok(())
        } else {
            Err(i32::try_from(-ret).unwrap_or(i32::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_or_absent_means_off() {
        const EPERM: i32 = 1;
        assert_eq!(support_with(true, || Err(EPERM)), AmxSupport::Refused(1));
        assert_eq!(support_with(true, || Ok(())), AmxSupport::Enabled);
        let mut asked = false;
        let got = support_with(false, || {
            asked = true;
            Ok(())
        });
        assert_eq!(got, AmxSupport::Absent);
        assert!(!asked, "no request without the CPU feature");
    }

    /// The process's answer agrees with the CPU: enabled only where the CPU has AMX, and on a
    /// Linux CPU with AMX the kernel (5.16 and later) grants the request.
    #[test]
    fn process_support_follows_the_cpu() {
        let s = support();
        if !cpu_has_amx() {
            assert_eq!(s, AmxSupport::Absent);
        } else if cfg!(target_os = "linux") {
            assert_eq!(s, AmxSupport::Enabled, "the kernel refused AMX");
        }
        assert_eq!(
            crate::isa::cpu_features().amx,
            s == AmxSupport::Enabled,
            "CpuFeatures::amx follows support()"
        );
    }
}
