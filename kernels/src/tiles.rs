//! The AMX tile registers as single operations, for tile algorithms written in Rust rather than
//! in one `asm!` block: [`TileOps`] names the instructions (`tilezero`, `tileloadd`,
//! `tilestored`, `tdpbf16ps`) on tiles chosen at compile time, [`AmxTiles`] issues them, and
//! [`EmulatedTiles`] computes them in software so that the algorithm (which operand sits
//! where, at which stride) is tested on every x86-64 CPU, AMX or not; on a CPU with AMX the
//! same algorithm runs on the hardware and is tested there against the same twin.
//!
//! Every tile is configured as 16 rows of 64 bytes (palette 1, tiles 0..8; [`Tiles`]). The
//! compiler never uses tile registers, so their contents survive from one `asm!` statement to
//! the next. x86-64 only.

use std::arch::asm;

/// Rows of a tile.
pub(crate) const TILE_ROWS: usize = 16;
/// Bytes of a tile row.
pub(crate) const TILE_BYTES: usize = 64;

/// The tile configuration `ldtilecfg` reads (64 bytes): palette 1, tiles 0..8 each 16 rows of
/// 64 bytes, the rest unused.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// The tiles configured for this thread; released (`tilerelease`, which also returns the
/// thread's tile state to its initial, cheap-to-save form) when dropped.
pub(crate) struct Tiles(());

impl Tiles {
    /// Configures the tiles. Safety: AMX is enabled for this process ([`crate::amx::support`]).
    pub(crate) unsafe fn configure() -> Tiles {
        // SAFETY: LDTILECFG reads the 64-byte configuration at the pointer (valid, aligned
        // static); the caller's contract makes the instruction legal. It zeroes every tile.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
        Tiles(())
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: a `Tiles` exists only after `configure`, so AMX is enabled; TILERELEASE
        // touches no memory.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// The tile instructions a tile algorithm uses, on tiles `0..8` named at compile time. Each
/// method is `unsafe`: a pointer must be valid for 16 rows of 64 bytes `stride` bytes apart
/// (read for `load`, written for `store`), and for [`AmxTiles`] the tiles are configured.
pub(crate) trait TileOps {
    /// `tilezero tmmT`: every byte of tile T zero.
    unsafe fn zero<const T: u8>(&mut self);
    /// `tileloadd tmmT, [src + stride * row]`: 16 rows of 64 bytes.
    unsafe fn load<const T: u8>(&mut self, src: *const u8, stride: usize);
    /// `tilestored [dst + stride * row], tmmT`.
    unsafe fn store<const T: u8>(&mut self, dst: *mut u8, stride: usize);
    /// `tdpbf16ps tmmC, tmmA, tmmB`: C (16 x 16 f32) += A (16 rows of 16 bf16 pairs) times B
    /// (16 rows, one per pair of k, of 16 columns' bf16 pairs), each pair's two products
    /// summed.
    unsafe fn dp_bf16<const C: u8, const A: u8, const B: u8>(&mut self);
}

/// The hardware tiles, configured while this lives.
pub(crate) struct AmxTiles(Tiles);

impl AmxTiles {
    /// Configures the tiles. Safety: AMX is enabled for this process.
    pub(crate) unsafe fn new() -> AmxTiles {
        // SAFETY: the caller's contract.
        AmxTiles(unsafe { Tiles::configure() })
    }
}

impl TileOps for AmxTiles {
    #[inline(always)]
    unsafe fn zero<const T: u8>(&mut self) {
        // SAFETY: the tiles are configured (an `AmxTiles` exists); no memory is touched.
        unsafe { asm!("tilezero tmm{t}", t = const T, options(nostack, nomem)) };
    }

    #[inline(always)]
    unsafe fn load<const T: u8>(&mut self, src: *const u8, stride: usize) {
        // SAFETY: the trait's contract: `src` is valid for 16 rows of 64 bytes `stride` apart.
        unsafe {
            asm!(
                "tileloadd tmm{t}, [{src} + {stride}*1]",
                t = const T,
                src = in(reg) src,
                stride = in(reg) stride,
                options(nostack, readonly)
            )
        };
    }

    #[inline(always)]
    unsafe fn store<const T: u8>(&mut self, dst: *mut u8, stride: usize) {
        // SAFETY: the trait's contract: `dst` is valid for writes of 16 rows of 64 bytes.
        unsafe {
            asm!(
                "tilestored [{dst} + {stride}*1], tmm{t}",
                t = const T,
                dst = in(reg) dst,
                stride = in(reg) stride,
                options(nostack)
            )
        };
    }

    #[inline(always)]
    unsafe fn dp_bf16<const C: u8, const A: u8, const B: u8>(&mut self) {
        // SAFETY: the tiles are configured; registers only.
        unsafe {
            asm!(
                "tdpbf16ps tmm{c}, tmm{a}, tmm{b}",
                c = const C,
                a = const A,
                b = const B,
                options(nostack, nomem)
            )
        };
    }
}

/// A software model of the 8 configured tiles: what the hardware computes, to test tile
/// algorithms anywhere. `tdpbf16ps` is modelled as Intel documents it: bf16 inputs that are
/// denormal read as zero, each pair's two products summed in f32 and added to C, denormal
/// results flushed to zero. The order of the f32 additions is the model's own, so results
/// match the hardware's within the kernels' f32 tolerances, not bit for bit.
#[cfg(test)]
#[derive(Clone)]
pub(crate) struct EmulatedTiles {
    tiles: [[u8; TILE_ROWS * TILE_BYTES]; 8],
}

#[cfg(test)]
impl Default for EmulatedTiles {
    fn default() -> Self {
        EmulatedTiles {
            tiles: [[0; TILE_ROWS * TILE_BYTES]; 8],
        }
    }
}

#[cfg(test)]
impl EmulatedTiles {
    /// Dword `i` (0..256) of tile `t`.
    fn dword(&self, t: u8, i: usize) -> u32 {
        let b = &self.tiles[usize::from(t)][4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// A bf16 value (bits) as f32, denormals read as zero.
#[cfg(test)]
pub(crate) fn bf16_daz(bits: u32) -> f32 {
    let bits = bits & 0xffff;
    if bits & 0x7f80 == 0 {
        0.0
    } else {
        f32::from_bits(bits << 16)
    }
}

#[cfg(test)]
impl TileOps for EmulatedTiles {
    unsafe fn zero<const T: u8>(&mut self) {
        self.tiles[usize::from(T)].fill(0);
    }

    unsafe fn load<const T: u8>(&mut self, src: *const u8, stride: usize) {
        for (r, row) in self.tiles[usize::from(T)]
            .chunks_exact_mut(TILE_BYTES)
            .enumerate()
        {
            // SAFETY: the trait's contract: row `r` is valid for 64 bytes at `src + r * stride`.
            unsafe {
                std::ptr::copy_nonoverlapping(src.add(r * stride), row.as_mut_ptr(), TILE_BYTES)
            };
        }
    }

    unsafe fn store<const T: u8>(&mut self, dst: *mut u8, stride: usize) {
        for (r, row) in self.tiles[usize::from(T)]
            .chunks_exact(TILE_BYTES)
            .enumerate()
        {
            // SAFETY: the trait's contract: row `r` is valid for writes at `dst + r * stride`.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), dst.add(r * stride), TILE_BYTES) };
        }
    }

    unsafe fn dp_bf16<const C: u8, const A: u8, const B: u8>(&mut self) {
        let mut c = [[0.0f32; 16]; TILE_ROWS];
        for (m, row) in c.iter_mut().enumerate() {
            for (n, x) in row.iter_mut().enumerate() {
                let mut acc = f32::from_bits(self.dword(C, m * 16 + n));
                for k in 0..16 {
                    let (a, b) = (self.dword(A, m * 16 + k), self.dword(B, k * 16 + n));
                    let lo = bf16_daz(a) * bf16_daz(b);
                    let hi = bf16_daz(a >> 16) * bf16_daz(b >> 16);
                    acc += lo + hi;
                }
                *x = if acc.is_subnormal() {
                    0.0f32.copysign(acc)
                } else {
                    acc
                };
            }
        }
        for (i, x) in c.iter().flatten().enumerate() {
            self.tiles[usize::from(C)][4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model's `tdpbf16ps` on small integers (exact in bf16 and f32): C += A B over pairs,
    /// with loads and stores at strides wider than a row.
    #[test]
    fn emulated_dp_bf16_is_a_matrix_product() {
        let bf = |x: f32| x.to_bits() >> 16;
        // A: 16 x 32 bf16 (m, k) = (m + k) % 5 - 2; B: 32 x 16 (k, n) = (k * n) % 3 - 1.
        let av = |m: usize, k: usize| ((m + k) % 5) as f32 - 2.0;
        let bv = |k: usize, n: usize| ((k * n) % 3) as f32 - 1.0;
        let lda = 20; // dwords
        let mut a = vec![0xdead_beef_u32; 16 * lda];
        for m in 0..16 {
            for k2 in 0..16 {
                a[m * lda + k2] = bf(av(m, 2 * k2)) | bf(av(m, 2 * k2 + 1)) << 16;
            }
        }
        let mut b = vec![0u32; 16 * 16];
        for k2 in 0..16 {
            for n in 0..16 {
                b[k2 * 16 + n] = bf(bv(2 * k2, n)) | bf(bv(2 * k2 + 1, n)) << 16;
            }
        }
        let mut c = vec![1.5f32; 16 * 24];
        let mut t = EmulatedTiles::default();
        // SAFETY: every pointer holds 16 rows at its stride.
        unsafe {
            t.load::<0>(c.as_ptr().cast(), 24 * 4);
            t.load::<4>(a.as_ptr().cast(), lda * 4);
            t.load::<6>(b.as_ptr().cast(), 64);
            t.dp_bf16::<0, 4, 6>();
            t.store::<0>(c.as_mut_ptr().cast(), 24 * 4);
            t.zero::<4>();
            t.store::<4>(a.as_mut_ptr().cast(), lda * 4);
        }
        for m in 0..16 {
            for n in 0..24 {
                let want = if n < 16 {
                    1.5 + (0..32).map(|k| av(m, k) * bv(k, n)).sum::<f32>()
                } else {
                    1.5
                };
                assert_eq!(c[m * 24 + n], want, "({m}, {n})");
            }
            assert!(a[m * lda..m * lda + 16].iter().all(|&x| x == 0));
            assert!(a[m * lda + 16..m * lda + lda]
                .iter()
                .all(|&x| x == 0xdead_beef));
        }
    }

    /// Denormal bf16 inputs read as zero.
    #[test]
    fn emulated_dp_bf16_reads_denormals_as_zero() {
        assert_eq!(bf16_daz(0x0001), 0.0);
        assert_eq!(bf16_daz(0x8040), 0.0);
        assert_eq!(bf16_daz(0x3f80), 1.0);
        assert_eq!(bf16_daz(0x1_bf80), -1.0);
    }
}
