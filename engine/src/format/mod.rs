//! The `.berth` container: constants, element types, and the reader and writer.
//! `docs/FORMAT.md` is the byte-level specification; [`raw`] mirrors it record for record.

pub mod raw;
pub(crate) mod reader;
mod writer;

pub use reader::{parse, BerthFile, Header, TensorInfo, TensorView};
pub use writer::{encode, to_raw_parts, write_file, TensorData};

/// `\x89BERTH\r\n`: a non-ASCII first byte and a CR LF pair, as PNG, so that text-mode transfers
/// and 7-bit channels are caught by the magic check.
pub const MAGIC: [u8; 8] = *b"\x89BERTH\r\n";
/// Stored little-endian: the bytes `04 03 02 01`.
pub const ENDIAN_MARKER: u32 = 0x0102_0304;
pub const FORMAT_MAJOR: u16 = 1;
/// 1.1 added layout 2 (GEMM panels), 1.2 the input scales of int8 layers, 1.3 dtype bf16 for
/// linear weights; a reader reads every earlier minor unchanged.
pub const FORMAT_MINOR: u16 = 3;
/// CRC-32 (ISO-HDLC), as `crc32fast` computes it.
pub const CHECKSUM_CRC32: u32 = 1;
pub const PREAMBLE_LEN: usize = 64;
/// The alignment of the data section and of every block in it.
pub const ALIGN: u64 = 64;

/// Caps on what the header may declare. Each is checked before anything of that size is
/// allocated or sliced.
pub mod caps {
    /// A 120k-token multilingual vocabulary takes about 2 MiB; 64 MiB is far above any real
    /// header and far below memory trouble.
    pub const HEADER_LEN: u64 = 64 << 20;
    pub const TENSOR_COUNT: u64 = 16384;
    pub const RANK: u64 = 4;
    pub const NAME_LEN: u64 = 256;
}

/// An element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    I8,
    /// (Since 1.3.) bfloat16: the top half of an f32. Linear weights only, computed by the
    /// bf16 GEMM (docs/FORMAT.md).
    Bf16,
}

impl DType {
    pub fn code(self) -> u8 {
        match self {
            DType::F32 => 1,
            DType::F16 => 2,
            DType::I8 => 3,
            DType::Bf16 => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<DType> {
        match code {
            1 => Some(DType::F32),
            2 => Some(DType::F16),
            3 => Some(DType::I8),
            4 => Some(DType::Bf16),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
            DType::I8 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "i8",
            DType::Bf16 => "bf16",
        }
    }
}

/// The order of a tensor's elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Row-major in PyTorch's order: a linear weight is `[out_features, in_features]`.
    RowMajor,
    /// (Since 1.1.) A linear weight `[N, K]` pre-packed in the GEMM's panels of 32 output
    /// channels (docs/KERNELS.md, "Packed weight layout"); for i8, K in groups of 4 and the
    /// channels' i32 sums after the bytes; for bf16, K in pairs. Read in place by the kernels.
    Panels,
}

impl Layout {
    pub fn code(self) -> u8 {
        match self {
            Layout::RowMajor => 1,
            Layout::Panels => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Layout> {
        match code {
            1 => Some(Layout::RowMajor),
            2 => Some(Layout::Panels),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::RowMajor => "row-major",
            Layout::Panels => "panels",
        }
    }

    /// The length in bytes of a data block of this layout, `dtype` and `dims`; `None` if it
    /// overflows `u64` or the layout does not apply to that rank.
    pub fn data_len(self, dtype: DType, dims: &[u64]) -> Option<u64> {
        match self {
            Layout::RowMajor => dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))?
                .checked_mul(dtype.size() as u64),
            Layout::Panels => {
                let &[n, k] = dims else { return None };
                let channels = n.div_ceil(PANEL).checked_mul(PANEL)?;
                match dtype {
                    DType::I8 => channels
                        .checked_mul(k.div_ceil(4).checked_mul(4)?)?
                        .checked_add(n.checked_mul(4)?),
                    // K in pairs: the 32 channels' pairs of consecutive k are interleaved.
                    DType::Bf16 => channels
                        .checked_mul(k.div_ceil(2).checked_mul(2)?)?
                        .checked_mul(2),
                    _ => channels.checked_mul(k)?.checked_mul(dtype.size() as u64),
                }
            }
        }
    }
}

/// Output channels per panel of [`Layout::Panels`]: the kernels' `gemm::PANEL`.
pub const PANEL: u64 = berth_kernels::gemm::PANEL as u64;

/// A tensor's quantisation scheme (versioned apart from the container).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quant {
    None,
    /// Scheme 1 version 1: int8, symmetric, one f32 scale per output channel (row).
    Int8PerChannel,
}

impl Quant {
    /// `(scheme, version)` as stored.
    pub fn codes(self) -> (u8, u8) {
        match self {
            Quant::None => (0, 0),
            Quant::Int8PerChannel => (1, 1),
        }
    }

    pub fn from_codes(scheme: u8, version: u8) -> Option<Quant> {
        match (scheme, version) {
            (0, 0) => Some(Quant::None),
            (1, 1) => Some(Quant::Int8PerChannel),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Quant::None => "none",
            Quant::Int8PerChannel => "int8-sym-per-channel/v1",
        }
    }
}

/// Rounds `x` up to a multiple of [`ALIGN`]; `None` on overflow.
pub fn align_up(x: u64) -> Option<u64> {
    x.checked_add(ALIGN - 1).map(|v| v & !(ALIGN - 1))
}

// The preamble is exactly as FORMAT.md lays it out.
const _: () = assert!(PREAMBLE_LEN == 64 && ALIGN.is_power_of_two());

#[cfg(test)]
mod tests {
    use super::*;
    use berth_kernels::gemm;

    /// A panel block's length is what the kernels pack, for every dtype and for K that is not
    /// a multiple of the i8 group (4) or the bf16 pair (2).
    #[test]
    fn panel_lengths_are_the_kernels_packing() {
        for (n, k) in [(1usize, 1usize), (31, 3), (32, 7), (33, 64), (50, 97)] {
            let dims = [n as u64, k as u64];
            let len = |d| Layout::Panels.data_len(d, &dims).unwrap() as usize;
            assert_eq!(len(DType::F32), 4 * gemm::packed_len(n, k));
            assert_eq!(len(DType::F16), 2 * gemm::packed_len(n, k));
            assert_eq!(len(DType::Bf16), 2 * gemm::packed_len_bf16(n, k));
            assert_eq!(len(DType::I8), gemm::packed_len_i8(n, k) + 4 * n);
        }
        assert_eq!(Layout::Panels.data_len(DType::Bf16, &[u64::MAX, 2]), None);
        assert_eq!(Layout::Panels.data_len(DType::Bf16, &[3, 2, 1]), None);
    }

    #[test]
    fn dtype_codes_round_trip() {
        for d in [DType::F32, DType::F16, DType::I8, DType::Bf16] {
            assert_eq!(DType::from_code(d.code()), Some(d));
        }
        assert_eq!(DType::from_code(0), None);
        assert_eq!(DType::from_code(5), None);
    }
}
