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
pub const FORMAT_MINOR: u16 = 0;
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
}

impl DType {
    pub fn code(self) -> u8 {
        match self {
            DType::F32 => 1,
            DType::F16 => 2,
            DType::I8 => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<DType> {
        match code {
            1 => Some(DType::F32),
            2 => Some(DType::F16),
            3 => Some(DType::I8),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::I8 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "i8",
        }
    }
}

/// The order of a tensor's elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Row-major in PyTorch's order: a linear weight is `[out_features, in_features]`.
    RowMajor,
}

impl Layout {
    pub fn code(self) -> u8 {
        match self {
            Layout::RowMajor => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<Layout> {
        match code {
            1 => Some(Layout::RowMajor),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::RowMajor => "row-major",
        }
    }
}

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
