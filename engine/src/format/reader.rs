//! Reading and validating a `.berth` file: the checks of docs/FORMAT.md, "What loading checks",
//! in that order. Nothing from the file is used before it is checked; every size is computed
//! with checked arithmetic in `u64` and converted with `try_from`.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::Path;

use half::{bf16, f16};

use super::raw::{RawConfig, RawHeader, RawPreamble, RawTensor, RawTokenizer};
use super::{align_up, caps, DType, Layout, Quant, ALIGN, PANEL, PREAMBLE_LEN};
use crate::config::{
    Activation, Family, Head, ModelConfig, Pooling, ProblemType, TokenizerConfig, TokenizerKind,
    Vocab,
};
use crate::error::{Error, FormatError};
use crate::schema;

/// A tensor's place in the file and what its bytes mean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub layout: Layout,
    pub quant: Quant,
    pub shape: Vec<usize>,
    /// Byte range of the elements, relative to the data section.
    pub data: Range<usize>,
    /// Byte range of the f32 scales (quantised tensors only), relative to the data section.
    pub scales: Option<Range<usize>>,
}

impl TensorInfo {
    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The validated header of a `.berth` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    pub config: ModelConfig,
    pub tokenizer: Option<TokenizerConfig>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
    pub header_len: u64,
    pub data_offset: u64,
    pub data_len: u64,
    pub header_crc: u32,
    pub data_crc: u32,
}

/// A block of 64 bytes aligned to 64, so that a file read into memory (rather than mapped) has
/// its data section as aligned as a mapping's.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Block([u8; 64]);

const _: () = assert!(std::mem::size_of::<Block>() == ALIGN as usize);

enum Storage {
    Mapped(memmap2::Mmap),
    Owned { blocks: Vec<Block>, len: usize },
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned { blocks, len } => &bytemuck::cast_slice(blocks)[..*len],
        }
    }
}

/// A loaded `.berth` file: a validated header over bytes that are mapped (or, from
/// [`BerthFile::from_bytes`], owned and 64-byte aligned). Tensors are read in place.
pub struct BerthFile {
    storage: Storage,
    header: Header,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for BerthFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BerthFile")
            .field("mapped", &matches!(self.storage, Storage::Mapped(_)))
            .field("len", &self.storage.bytes().len())
            .field("config", &self.header.config)
            .field("tensors", &self.header.tensors.len())
            .finish()
    }
}

/// A tensor's bytes, typed.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub info: &'a TensorInfo,
    bytes: &'a [u8],
    scale_bytes: Option<&'a [u8]>,
}

impl<'a> TensorView<'a> {
    /// The raw element bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The elements, if the dtype is f32.
    pub fn as_f32(&self) -> Option<&'a [f32]> {
        (self.info.dtype == DType::F32)
            .then(|| bytemuck::try_cast_slice(self.bytes).ok())
            .flatten()
    }

    /// The elements, if the dtype is f16.
    pub fn as_f16(&self) -> Option<&'a [f16]> {
        (self.info.dtype == DType::F16)
            .then(|| bytemuck::try_cast_slice(self.bytes).ok())
            .flatten()
    }

    /// The elements, if the dtype is bf16.
    pub fn as_bf16(&self) -> Option<&'a [bf16]> {
        (self.info.dtype == DType::Bf16)
            .then(|| bytemuck::try_cast_slice(self.bytes).ok())
            .flatten()
    }

    /// The elements, if the dtype is i8 (for panels, the packed bytes without the sums).
    pub fn as_i8(&self) -> Option<&'a [i8]> {
        (self.info.dtype == DType::I8)
            .then(|| bytemuck::try_cast_slice(&self.bytes[..self.i8_len()]).ok())
            .flatten()
    }

    /// The bytes of an i8 tensor's elements: all of the block, or for panels the part before
    /// the channel sums.
    fn i8_len(&self) -> usize {
        match (self.info.layout, self.info.shape.as_slice()) {
            (Layout::Panels, &[n, k]) => berth_kernels::gemm::packed_len_i8(n, k),
            _ => self.bytes.len(),
        }
    }

    /// The channel sums of i8 panels.
    pub fn panel_sums(&self) -> Option<&'a [i32]> {
        (self.info.dtype == DType::I8 && self.info.layout == Layout::Panels)
            .then(|| bytemuck::try_cast_slice(&self.bytes[self.i8_len()..]).ok())
            .flatten()
    }

    /// The weights as the GEMM reads them in place, if the tensor is stored in panels.
    pub fn gemm_weights(&self) -> Option<berth_kernels::gemm::Weights<'a>> {
        use berth_kernels::gemm::{PackedI8, Weights};
        if self.info.layout != Layout::Panels {
            return None;
        }
        match self.info.dtype {
            DType::F32 => self.as_f32().map(Weights::F32),
            DType::F16 => self.as_f16().map(Weights::F16),
            DType::Bf16 => self.as_bf16().map(Weights::Bf16),
            DType::I8 => Some(Weights::I8(PackedI8 {
                q: self.as_i8()?,
                scale: self.scales()?,
                col_sum: self.panel_sums()?,
                // A sibling tensor: the caller attaches it.
                input_scale: None,
                // A run-time choice of the engine's.
                groups: None,
            })),
        }
    }

    /// The index of element `(n, k)` of a rank-2 tensor in its elements (as `as_f32`,
    /// `as_f16`, `as_bf16`, `as_i8` give them).
    fn index(&self, n: usize, k: usize) -> usize {
        let cols = self.info.shape[1..].iter().product::<usize>();
        match self.info.layout {
            Layout::RowMajor => n * cols + k,
            Layout::Panels => panel_index(self.info.dtype)(n, k, cols),
        }
    }

    /// The per-row scales of a quantised tensor.
    pub fn scales(&self) -> Option<&'a [f32]> {
        self.scale_bytes
            .and_then(|b| bytemuck::try_cast_slice(b).ok())
    }

    /// The tensor as f32, row-major: a copy, widened from f16 or bf16 or dequantised from
    /// int8, and unpacked from panels.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        if self.info.layout == Layout::Panels {
            return self.unpack_f32();
        }
        let mut out = vec![0.0f32; self.info.numel()];
        match self.info.dtype {
            DType::F32 => {
                if let Some(x) = self.as_f32() {
                    out.copy_from_slice(x);
                }
            }
            DType::F16 => {
                if let Some(x) = self.as_f16() {
                    berth_kernels::convert::f16_to_f32(x, &mut out);
                }
            }
            DType::Bf16 => {
                if let Some(x) = self.as_bf16() {
                    for (o, v) in out.iter_mut().zip(x) {
                        *o = v.to_f32();
                    }
                }
            }
            DType::I8 => {
                if let (Some(q), Some(scales)) = (self.as_i8(), self.scales()) {
                    let cols = self.info.shape[1..].iter().product::<usize>();
                    for ((row_q, row_out), &s) in q
                        .chunks_exact(cols)
                        .zip(out.chunks_exact_mut(cols))
                        .zip(scales)
                    {
                        berth_kernels::quant::dequantize_row_i8(row_q, s, row_out);
                    }
                }
            }
        }
        out
    }

    /// [`Self::to_f32_vec`] for panels (rank 2 by validation).
    fn unpack_f32(&self) -> Vec<f32> {
        let (n, k) = (self.info.shape[0], self.info.shape[1]);
        let mut out = vec![0.0f32; n * k];
        let mut fill = |value: &dyn Fn(usize, usize) -> f32| {
            for (row, out_row) in out.chunks_exact_mut(k).enumerate() {
                for (col, o) in out_row.iter_mut().enumerate() {
                    *o = value(row, col);
                }
            }
        };
        match self.info.dtype {
            DType::F32 => {
                if let Some(x) = self.as_f32() {
                    fill(&|r, c| x[self.index(r, c)]);
                }
            }
            DType::F16 => {
                if let Some(x) = self.as_f16() {
                    fill(&|r, c| x[self.index(r, c)].to_f32());
                }
            }
            DType::Bf16 => {
                if let Some(x) = self.as_bf16() {
                    fill(&|r, c| x[self.index(r, c)].to_f32());
                }
            }
            DType::I8 => {
                if let (Some(q), Some(s)) = (self.as_i8(), self.scales()) {
                    fill(&|r, c| s[r] * f32::from(q[self.index(r, c)]));
                }
            }
        }
        out
    }
}

impl BerthFile {
    /// Maps and validates a file. Only the preamble, the header and the quantisation scales
    /// are read; weight pages are touched when used.
    pub fn open(path: impl AsRef<Path>) -> Result<BerthFile, Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < PREAMBLE_LEN as u64 {
            // Checked before mapping: an empty file cannot be mapped on every platform.
            return Err(FormatError::TooShort {
                len,
                min: PREAMBLE_LEN as u64,
            }
            .into());
        }
        // SAFETY: the mapping is read-only and lives as long as `BerthFile`, which owns it and
        // hands out slices that borrow from it. Mapping a file is sound as long as no one
        // truncates or writes the file while it is mapped; like every mmap-based loader
        // (safetensors, llama.cpp), berth documents that requirement rather than copying the
        // weights. All bytes are validated before use, so contents are untrusted either way.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let header = parse(&map)?;
        Ok(BerthFile::new(Storage::Mapped(map), header))
    }

    /// Validates a file image held in memory. The bytes are copied once into a 64-byte-aligned
    /// buffer, so that tensors can be used in place like a mapping's.
    pub fn from_bytes(bytes: &[u8]) -> Result<BerthFile, FormatError> {
        let header = parse(bytes)?;
        let mut blocks = vec![Block([0; 64]); bytes.len().div_ceil(ALIGN as usize)];
        bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..bytes.len()].copy_from_slice(bytes);
        Ok(BerthFile::new(
            Storage::Owned {
                blocks,
                len: bytes.len(),
            },
            header,
        ))
    }

    fn new(storage: Storage, header: Header) -> BerthFile {
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        BerthFile {
            storage,
            header,
            index,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn config(&self) -> &ModelConfig {
        &self.header.config
    }

    pub fn tokenizer(&self) -> Option<&TokenizerConfig> {
        self.header.tokenizer.as_ref()
    }

    /// The whole file image.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The size of the file in bytes.
    pub fn len(&self) -> usize {
        self.storage.bytes().len()
    }

    /// Whether the file is empty (never, for a valid file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes are a memory mapping (as opposed to a copy in memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }

    fn data_section(&self) -> &[u8] {
        // In range: parse() checked data_offset + data_len == file length.
        &self.storage.bytes()[self.header.data_offset as usize..]
    }

    /// The tensor with this name.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let info = &self.header.tensors[*self.index.get(name)?];
        Some(self.view(info))
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'_>> + '_ {
        self.header.tensors.iter().map(|t| self.view(t))
    }

    fn view<'a>(&'a self, info: &'a TensorInfo) -> TensorView<'a> {
        // In range: parse() checked every block against the data section.
        let data = self.data_section();
        TensorView {
            info,
            bytes: &data[info.data.clone()],
            scale_bytes: info.scales.clone().map(|r| &data[r]),
        }
    }

    /// Reads the whole data section: its checksum, the zero padding between blocks, and that
    /// every f32, f16 and bf16 weight is finite (docs/FORMAT.md, "What `verify` adds").
    pub fn verify(&self) -> Result<(), FormatError> {
        let data = self.data_section();
        let computed = crc32fast::hash(data);
        if computed != self.header.data_crc {
            return Err(FormatError::DataChecksumMismatch {
                stored: self.header.data_crc,
                computed,
            });
        }
        let mut prev_end = 0usize;
        let mut check_gap = |start: usize, end: usize| -> Result<(), FormatError> {
            for (i, &b) in data[prev_end..start].iter().enumerate() {
                if b != 0 {
                    return Err(FormatError::NonZeroPadding {
                        offset: self.header.data_offset + (prev_end + i) as u64,
                        value: b,
                    });
                }
            }
            prev_end = end;
            Ok(())
        };
        for t in &self.header.tensors {
            check_gap(t.data.start, t.data.end)?;
            if let Some(s) = &t.scales {
                check_gap(s.start, s.end)?;
            }
        }
        for view in self.tensors() {
            let non_finite = match view.info.dtype {
                DType::F32 => view
                    .as_f32()
                    .and_then(|x| x.iter().position(|v| !v.is_finite()).map(|i| (i, x[i]))),
                DType::F16 => view.as_f16().and_then(|x| {
                    x.iter()
                        .position(|v| !v.is_finite())
                        .map(|i| (i, x[i].to_f32()))
                }),
                DType::Bf16 => view.as_bf16().and_then(|x| {
                    x.iter()
                        .position(|v| !v.is_finite())
                        .map(|i| (i, x[i].to_f32()))
                }),
                DType::I8 => None,
            };
            if let Some((index, value)) = non_finite {
                return Err(FormatError::NonFiniteWeight {
                    name: view.info.name.clone(),
                    index,
                    value,
                });
            }
            check_packed(&view)?;
        }
        Ok(())
    }
}

/// What `verify` checks of quantised and packed weights beyond the checksum: no i8 value is
/// -128 (scheme 1 never makes it, and the AVX2 kernel's sign trick relies on it); no bf16
/// value is denormal (`vdpbf16ps` reads denormals as zero and the other paths would not, so
/// the converter flushes them); in panels, the padding (channels past N, and for i8 and bf16
/// the K positions past K) is zero and each channel sum is the sum of the channel's values.
fn check_packed(view: &TensorView<'_>) -> Result<(), FormatError> {
    let bad = |reason: String| FormatError::BadPackedWeights {
        name: view.info.name.clone(),
        reason,
    };
    if let Some(q) = view.as_i8() {
        if let Some(i) = q.iter().position(|&v| v == i8::MIN) {
            return Err(bad(format!("element {i} is -128, outside -127..=127")));
        }
    }
    if let Some(x) = view.as_bf16() {
        if let Some(i) = x
            .iter()
            .position(|v| v.classify() == std::num::FpCategory::Subnormal)
        {
            return Err(bad(format!("element {i} is denormal")));
        }
    }
    if view.info.layout != Layout::Panels {
        return Ok(());
    }
    let (n, k) = (view.info.shape[0], view.info.shape[1]);
    let n_pad = n.div_ceil(PANEL as usize) * PANEL as usize;
    let is_zero = |i: usize| match view.info.dtype {
        DType::F32 => view.as_f32().is_some_and(|x| x[i] == 0.0),
        DType::F16 => view.as_f16().is_some_and(|x| x[i].to_f32() == 0.0),
        DType::Bf16 => view.as_bf16().is_some_and(|x| x[i].to_f32() == 0.0),
        DType::I8 => view.as_i8().is_some_and(|x| x[i] == 0),
    };
    let k_pad = match view.info.dtype {
        DType::I8 => k.div_ceil(4) * 4,
        DType::Bf16 => k.div_ceil(2) * 2,
        DType::F32 | DType::F16 => k,
    };
    let index = panel_index(view.info.dtype);
    for row in 0..n_pad {
        let cols = if row < n { k..k_pad } else { 0..k_pad };
        if let Some(col) = cols.clone().find(|&col| !is_zero(index(row, col, k))) {
            return Err(bad(format!(
                "padding at channel {row}, k {col} is not zero"
            )));
        }
    }
    if let (Some(q), Some(sums)) = (view.as_i8(), view.panel_sums()) {
        // In memory order (the padding, checked zero above, adds nothing).
        let p = PANEL as usize;
        let mut computed = vec![0i64; n_pad];
        for (panel, block) in q.chunks_exact(p * k_pad).enumerate() {
            for group in block.chunks_exact(p * 4) {
                for (c, four) in group.chunks_exact(4).enumerate() {
                    computed[panel * p + c] += four.iter().map(|&v| i64::from(v)).sum::<i64>();
                }
            }
        }
        for (row, (&stored, &sum)) in sums.iter().zip(&computed).enumerate() {
            if sum != i64::from(stored) {
                return Err(bad(format!(
                    "channel {row} sums to {sum}, the file says {stored}"
                )));
            }
        }
    }
    Ok(())
}

/// Where panels of `dtype` keep element `(n, k)` of an `[N, K]` weight, as `index(n, k, K)`.
fn panel_index(dtype: DType) -> fn(usize, usize, usize) -> usize {
    match dtype {
        DType::I8 => berth_kernels::gemm::packed_index_i8,
        DType::Bf16 => berth_kernels::gemm::packed_index_bf16,
        DType::F32 | DType::F16 => berth_kernels::gemm::packed_index,
    }
}

/// Validates a whole file image and returns its header. This is the whole of the loader's
/// checking; [`BerthFile::open`] and [`BerthFile::from_bytes`] only add storage.
pub fn parse(file: &[u8]) -> Result<Header, FormatError> {
    let file_len = file.len() as u64;
    let Some(pre_bytes) = file.first_chunk::<PREAMBLE_LEN>() else {
        return Err(FormatError::TooShort {
            len: file_len,
            min: PREAMBLE_LEN as u64,
        });
    };
    let pre = RawPreamble::decode(pre_bytes);
    if pre.magic != super::MAGIC {
        return Err(FormatError::BadMagic { found: pre.magic });
    }
    if pre.endian != super::ENDIAN_MARKER || cfg!(target_endian = "big") {
        return Err(FormatError::UnsupportedEndianness { found: pre.endian });
    }
    if pre.major != super::FORMAT_MAJOR || pre.minor > super::FORMAT_MINOR {
        return Err(FormatError::UnsupportedVersion {
            major: pre.major,
            minor: pre.minor,
            supported_major: super::FORMAT_MAJOR,
            supported_minor: super::FORMAT_MINOR,
        });
    }
    if pre.checksum_algo != super::CHECKSUM_CRC32 {
        return Err(FormatError::UnsupportedChecksum {
            found: pre.checksum_algo,
        });
    }
    if pre.flags != 0 {
        return Err(FormatError::NonZeroReserved {
            field: "flags",
            value: pre.flags.into(),
        });
    }
    if pre.reserved != 0 {
        return Err(FormatError::NonZeroReserved {
            field: "reserved",
            value: pre.reserved,
        });
    }
    if pre.header_len > caps::HEADER_LEN {
        return Err(FormatError::HeaderTooLarge {
            len: pre.header_len,
            cap: caps::HEADER_LEN,
        });
    }
    // Cannot overflow: header_len is at most 64 MiB.
    let header_end = PREAMBLE_LEN as u64 + pre.header_len;
    if header_end > file_len {
        return Err(FormatError::Truncated {
            what: "header",
            needed: header_end,
            len: file_len,
        });
    }
    let expected_data_offset = align_up(header_end).unwrap_or(u64::MAX);
    if pre.data_offset != expected_data_offset {
        return Err(FormatError::BadDataOffset {
            found: pre.data_offset,
            header_end,
            expected: expected_data_offset,
        });
    }
    let data_end = pre.data_offset.checked_add(pre.data_len);
    match data_end {
        Some(end) if end == file_len => {}
        Some(end) if end < file_len => {
            return Err(FormatError::TrailingBytes {
                extra: file_len - end,
            })
        }
        _ => {
            return Err(FormatError::Truncated {
                what: "data section",
                needed: data_end.unwrap_or(u64::MAX),
                len: file_len,
            })
        }
    }
    // All of these are now known to be within the file, hence within usize.
    let header_end = header_end as usize;
    let data_offset = pre.data_offset as usize;
    let header_bytes = &file[PREAMBLE_LEN..header_end];
    let computed = super::raw::header_crc(pre_bytes, header_bytes);
    if computed != pre.header_crc {
        return Err(FormatError::HeaderChecksumMismatch {
            stored: pre.header_crc,
            computed,
        });
    }
    if let Some(i) = file[header_end..data_offset].iter().position(|&b| b != 0) {
        return Err(FormatError::NonZeroPadding {
            offset: (header_end + i) as u64,
            value: file[header_end + i],
        });
    }

    let raw = RawHeader::decode(header_bytes)?;
    let config = decode_config(&raw.config)?;
    let tokenizer = match &raw.tokenizer {
        None => None,
        Some(t) => {
            let t = decode_tokenizer(t)?;
            t.validate(&config)?;
            Some(t)
        }
    };
    let data = &file[data_offset..];
    let tensors = decode_tensors(&raw.tensors, pre.data_len, pre.minor)?;
    check_tensor_set(&config, &tensors, pre.minor)?;
    check_scales(&tensors, data)?;
    Ok(Header {
        major: pre.major,
        minor: pre.minor,
        config,
        tokenizer,
        tensors,
        header_len: pre.header_len,
        data_offset: pre.data_offset,
        data_len: pre.data_len,
        header_crc: pre.header_crc,
        data_crc: pre.data_crc,
    })
}

fn invalid(field: &'static str, code: u8, context: &str) -> FormatError {
    FormatError::InvalidEnum {
        field,
        code: code.into(),
        context: context.to_owned(),
    }
}

fn flag(field: &'static str, code: u8) -> Result<bool, FormatError> {
    match code {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(invalid(field, code, "")),
    }
}

fn utf8<'a>(
    bytes: &'a [u8],
    what: &'static str,
    context: impl FnOnce() -> String,
) -> Result<&'a str, FormatError> {
    std::str::from_utf8(bytes).map_err(|_| FormatError::BadUtf8 {
        what,
        context: context(),
    })
}

fn decode_config(raw: &RawConfig<'_>) -> Result<ModelConfig, FormatError> {
    let family = Family::from_code(raw.family).ok_or_else(|| invalid("family", raw.family, ""))?;
    let head = Head::from_code(raw.head).ok_or_else(|| invalid("head", raw.head, ""))?;
    let hidden_act = Activation::from_code(raw.hidden_act)
        .ok_or_else(|| invalid("hidden_act", raw.hidden_act, ""))?;
    let pooling =
        Pooling::from_code(raw.pooling).ok_or_else(|| invalid("pooling", raw.pooling, ""))?;
    let problem_type = ProblemType::from_code(raw.problem_type)
        .ok_or_else(|| invalid("problem_type", raw.problem_type, ""))?;
    // A size beyond usize (possible on 32-bit targets) becomes usize::MAX, which is over every
    // cap: `ModelConfig::validate` below reports it with the others.
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let mut labels = Vec::with_capacity(raw.labels.len());
    for (i, l) in raw.labels.iter().enumerate() {
        labels.push(utf8(l, "label", || format!("label {i}"))?.to_owned());
    }
    let config = ModelConfig {
        family,
        head,
        hidden_act,
        has_pooler: flag("has_pooler", raw.has_pooler)?,
        pooling,
        normalize: flag("normalize", raw.normalize)?,
        problem_type,
        tied_decoder: flag("tied_decoder", raw.tied_decoder)?,
        vocab_size: size(raw.vocab_size),
        hidden_size: size(raw.hidden_size),
        num_layers: size(raw.num_layers),
        num_heads: size(raw.num_heads),
        intermediate_size: size(raw.intermediate_size),
        max_position_embeddings: size(raw.max_position_embeddings),
        type_vocab_size: size(raw.type_vocab_size),
        layer_norm_eps: raw.layer_norm_eps,
        labels,
    };
    config.validate()?;
    Ok(config)
}

fn decode_tokenizer(raw: &RawTokenizer<'_>) -> Result<TokenizerConfig, FormatError> {
    let kind = TokenizerKind::from_code(raw.kind)
        .ok_or_else(|| invalid("tokenizer kind", raw.kind, ""))?;
    let strip_accents = match raw.strip_accents {
        0 => None,
        1 => Some(true),
        2 => Some(false),
        c => return Err(invalid("strip_accents", c, "")),
    };
    if raw.reserved != 0 {
        return Err(FormatError::NonZeroReserved {
            field: "tokenizer reserved",
            value: raw.reserved.into(),
        });
    }
    let bad = |reason: String| FormatError::BadTokenizer { reason };
    let id = |name: &str, v: u64| -> Result<u32, FormatError> {
        u32::try_from(v).map_err(|_| bad(format!("{name} {v} is out of range")))
    };
    let length = |name: &str, v: u64| -> Result<usize, FormatError> {
        usize::try_from(v).map_err(|_| bad(format!("{name} {v} is out of range")))
    };
    let mut vocab = Vocab::default();
    for (i, tok) in raw.vocab.iter().enumerate() {
        let tok = utf8(tok, "vocab token", || format!("id {i}"))?;
        vocab
            .push(tok)
            .ok_or_else(|| bad("vocabulary text over 4 GiB".into()))?;
    }
    let special_ids = raw
        .special_ids
        .iter()
        .map(|&v| id("special token id", v))
        .collect::<Result<Vec<_>, _>>()?;
    let [unk, cls, sep, pad, mask] = raw.special;
    Ok(TokenizerConfig {
        kind,
        lowercase: flag("lowercase", raw.lowercase)?,
        strip_accents,
        handle_chinese_chars: flag("handle_chinese_chars", raw.handle_chinese_chars)?,
        clean_text: flag("clean_text", raw.clean_text)?,
        max_length: length("max_length", raw.max_length)?,
        max_input_chars_per_word: length("max_input_chars_per_word", raw.max_input_chars_per_word)?,
        continuing_subword_prefix: utf8(
            &raw.continuing_subword_prefix,
            "continuing_subword_prefix",
            String::new,
        )?
        .to_owned(),
        unk_id: id("unk_id", unk)?,
        cls_id: id("cls_id", cls)?,
        sep_id: id("sep_id", sep)?,
        pad_id: id("pad_id", pad)?,
        mask_id: id("mask_id", mask)?,
        vocab,
        special_ids,
    })
}

/// Checks every directory entry on its own and the blocks' placement in the data section.
fn decode_tensors(
    raw: &[RawTensor<'_>],
    data_len: u64,
    minor: u16,
) -> Result<Vec<TensorInfo>, FormatError> {
    let mut out = Vec::with_capacity(raw.len());
    // End of the previous block, relative to the data section.
    let mut prev_end = 0u64;
    for (i, t) in raw.iter().enumerate() {
        let name = utf8(&t.name, "tensor name", || format!("entry {i}"))?.to_owned();
        // bf16 (code 4) came with 1.3: in an earlier file it is as unknown as any other code.
        let dtype = DType::from_code(t.dtype)
            .filter(|&d| d != DType::Bf16 || minor >= 3)
            .ok_or_else(|| invalid("dtype", t.dtype, &name))?;
        let layout =
            Layout::from_code(t.layout).ok_or_else(|| invalid("layout", t.layout, &name))?;
        let quant = Quant::from_codes(t.quant_scheme, t.quant_version).ok_or_else(|| {
            FormatError::UnsupportedQuant {
                name: name.clone(),
                scheme: t.quant_scheme,
                version: t.quant_version,
            }
        })?;
        let quant_bad = |reason: &str| FormatError::QuantMismatch {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        match (dtype, quant) {
            (DType::I8, Quant::Int8PerChannel)
                if t.dims.len() == 2 && t.dims[1] > berth_kernels::gemm::MAX_K_I8 as u64 =>
            {
                return Err(quant_bad(
                    "per-channel int8 rows are at most 65,536 long (the int8 GEMM's exact i32 sums)",
                ))
            }
            (DType::I8, Quant::Int8PerChannel) if t.dims.len() == 2 => {}
            (DType::I8, Quant::Int8PerChannel) => {
                return Err(quant_bad("per-channel int8 needs a rank-2 tensor"))
            }
            (DType::I8, Quant::None) => {
                return Err(quant_bad("i8 data without a quantisation scheme"))
            }
            (_, Quant::Int8PerChannel) => {
                return Err(quant_bad("int8 quantisation scheme on non-i8 data"))
            }
            (_, Quant::None) => {}
        }
        if t.dims.is_empty() || t.dims.len() as u64 > caps::RANK {
            return Err(FormatError::BadRank {
                name,
                rank: t.dims.len() as u64,
                max: caps::RANK,
            });
        }
        if let Some(axis) = t.dims.iter().position(|&d| d == 0) {
            return Err(FormatError::ZeroDim { name, axis });
        }
        let overflow = || FormatError::ShapeOverflow {
            name: name.clone(),
            dims: t.dims.clone(),
        };
        if layout == Layout::Panels {
            if minor < 1 {
                return Err(FormatError::LayoutMismatch {
                    name,
                    reason: "panels (2) came with format 1.1, the file says 1.0".into(),
                });
            }
            if t.dims.len() != 2 {
                return Err(FormatError::LayoutMismatch {
                    name,
                    reason: "panels need a rank-2 tensor".into(),
                });
            }
        }
        let expected_len = layout.data_len(dtype, &t.dims).ok_or_else(overflow)?;
        let shape = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| overflow())?;
        usize::try_from(expected_len).map_err(|_| overflow())?;
        if t.data_len != expected_len {
            return Err(FormatError::LengthMismatch {
                name,
                what: "data",
                found: t.data_len,
                expected: expected_len,
            });
        }
        let data = place(
            &name,
            "data",
            t.data_offset,
            t.data_len,
            &mut prev_end,
            data_len,
        )?;
        let scales = if quant == Quant::Int8PerChannel {
            let expected = t.dims[0].checked_mul(4).ok_or_else(overflow)?;
            if t.scale_len != expected {
                return Err(FormatError::LengthMismatch {
                    name,
                    what: "scales",
                    found: t.scale_len,
                    expected,
                });
            }
            Some(place(
                &name,
                "scales",
                t.scale_offset,
                t.scale_len,
                &mut prev_end,
                data_len,
            )?)
        } else {
            if t.scale_offset != 0 || t.scale_len != 0 {
                return Err(quant_bad("scale block on an unquantised tensor"));
            }
            None
        };
        out.push(TensorInfo {
            name,
            dtype,
            layout,
            quant,
            shape,
            data,
            scales,
        });
    }
    if data_len != prev_end {
        return Err(FormatError::TrailingData {
            extra: data_len - prev_end,
            data_len,
            tensors_end: prev_end,
        });
    }
    Ok(out)
}

/// Checks that a block starts exactly where the layout rule says (the aligned end of the
/// previous block) and ends inside the data section; advances `prev_end`.
fn place(
    name: &str,
    what: &'static str,
    offset: u64,
    len: u64,
    prev_end: &mut u64,
    data_len: u64,
) -> Result<Range<usize>, FormatError> {
    if !offset.is_multiple_of(ALIGN) {
        return Err(FormatError::Misaligned {
            name: name.to_owned(),
            what,
            offset,
            align: ALIGN,
        });
    }
    // prev_end <= data_len, which is within the file, so this cannot overflow.
    let expected = align_up(*prev_end).unwrap_or(u64::MAX);
    if offset < *prev_end {
        return Err(FormatError::TensorOverlap {
            name: name.to_owned(),
            what,
            offset,
            prev_end: *prev_end,
        });
    }
    if offset > expected {
        return Err(FormatError::TensorHole {
            name: name.to_owned(),
            what,
            offset,
            prev_end: *prev_end,
            expected,
        });
    }
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= data_len)
        .ok_or_else(|| FormatError::TensorOutOfRange {
            name: name.to_owned(),
            what,
            offset,
            len,
            data_len,
        })?;
    *prev_end = end;
    // Both within the data section, which is within the file.
    Ok(offset as usize..end as usize)
}

/// Checks the directory against the tensor set the config implies, and the optional input
/// scales of format 1.2 (f32, row-major, beside int8 weights only).
fn check_tensor_set(
    config: &ModelConfig,
    tensors: &[TensorInfo],
    minor: u16,
) -> Result<(), FormatError> {
    let mut seen: HashMap<&str, &TensorInfo> = HashMap::with_capacity(tensors.len());
    for t in tensors {
        if seen.insert(t.name.as_str(), t).is_some() {
            return Err(FormatError::DuplicateTensor {
                name: t.name.clone(),
            });
        }
    }
    let expected = schema::expected_tensors(config);
    let by_name: HashMap<&str, &schema::Expected> =
        expected.iter().map(|e| (e.name.as_str(), e)).collect();
    let optional = schema::input_scales(config);
    let optional: HashMap<&str, &schema::Expected> =
        optional.iter().map(|e| (e.name.as_str(), e)).collect();
    for t in tensors {
        let e = match (by_name.get(t.name.as_str()), optional.get(t.name.as_str())) {
            (Some(e), _) => e,
            (None, Some(e)) if minor >= 2 => {
                let bad = |reason: &str| FormatError::BadInputScale {
                    name: t.name.clone(),
                    reason: reason.into(),
                };
                let weight = t.name.replace(".input_scale", ".weight");
                match seen.get(weight.as_str()) {
                    Some(w) if w.dtype == DType::I8 => {}
                    _ => return Err(bad("input scales come only beside int8 weights")),
                }
                if t.dtype != DType::F32 || t.layout != Layout::RowMajor {
                    return Err(bad("input scales are f32, row-major"));
                }
                e
            }
            _ => {
                return Err(FormatError::UnexpectedTensor {
                    name: t.name.clone(),
                })
            }
        };
        if t.shape != e.shape {
            return Err(FormatError::ShapeMismatch {
                name: t.name.clone(),
                expected: e.shape.clone(),
                found: t.shape.iter().map(|&d| d as u64).collect(),
            });
        }
        if !e.role.allows(t.dtype) {
            return Err(FormatError::DtypeNotAllowed {
                name: t.name.clone(),
                dtype: t.dtype.name(),
            });
        }
        if t.layout == Layout::Panels && e.role != schema::Role::Linear {
            return Err(FormatError::LayoutMismatch {
                name: t.name.clone(),
                reason: "panels are for the weights of linear layers only".into(),
            });
        }
    }
    if let Some(e) = expected
        .iter()
        .find(|e| !seen.contains_key(e.name.as_str()))
    {
        return Err(FormatError::MissingTensor {
            name: e.name.clone(),
        });
    }
    Ok(())
}

/// Every quantisation scale and every input scale must be finite and positive. Reads only the
/// scale blocks and the input-scale tensors (one value per input feature of a linear layer).
fn check_scales(tensors: &[TensorInfo], data: &[u8]) -> Result<(), FormatError> {
    for t in tensors {
        let range = match &t.scales {
            Some(r) => r,
            None if t.name.ends_with(".input_scale") => &t.data,
            None => continue,
        };
        for (index, chunk) in data[range.clone()].chunks_exact(4).enumerate() {
            let value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if !(value.is_finite() && value > 0.0) {
                return Err(FormatError::NonFiniteScale {
                    name: t.name.clone(),
                    index,
                    value,
                });
            }
        }
    }
    Ok(())
}
