//! Writing a `.berth` file: the layout rule of docs/FORMAT.md ("Data section") applied to a list
//! of tensors, then the header encoded and both checksums computed. The result is parsed back
//! before it is returned, so the writer can never emit a file its reader refuses.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use half::{bf16, f16};

use super::raw::{self, RawConfig, RawHeader, RawTensor, RawTokenizer};
use super::{align_up, DType, Layout, Quant};
use crate::config::{ModelConfig, TokenizerConfig};
use crate::error::{Error, FormatError};

/// A tensor to be written: its name, shape, element type, and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub layout: Layout,
    pub quant: Quant,
    /// The elements, little-endian.
    pub bytes: Vec<u8>,
    /// Per-row scales of a quantised tensor.
    pub scales: Option<Vec<f32>>,
}

impl TensorData {
    pub fn f32(name: impl Into<String>, shape: &[usize], values: &[f32]) -> TensorData {
        TensorData {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: DType::F32,
            layout: Layout::RowMajor,
            quant: Quant::None,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            scales: None,
        }
    }

    pub fn f16(name: impl Into<String>, shape: &[usize], values: &[f16]) -> TensorData {
        TensorData {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: DType::F16,
            layout: Layout::RowMajor,
            quant: Quant::None,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            scales: None,
        }
    }

    /// A bf16 tensor (a linear weight; since format 1.3), row-major.
    pub fn bf16(name: impl Into<String>, shape: &[usize], values: &[bf16]) -> TensorData {
        TensorData {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: DType::Bf16,
            layout: Layout::RowMajor,
            quant: Quant::None,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            scales: None,
        }
    }

    /// An int8 tensor quantised per output channel (row): `q` is `shape[0] x shape[1]`,
    /// `scales` has `shape[0]` entries.
    pub fn int8_per_channel(
        name: impl Into<String>,
        shape: &[usize],
        q: &[i8],
        scales: &[f32],
    ) -> TensorData {
        TensorData {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: DType::I8,
            layout: Layout::RowMajor,
            quant: Quant::Int8PerChannel,
            bytes: q.iter().map(|&v| v as u8).collect(),
            scales: Some(scales.to_vec()),
        }
    }
}

impl TensorData {
    /// A linear weight `[N, K]` (row-major `values`) stored as f32 panels.
    pub fn f32_panels(name: impl Into<String>, shape: &[usize], values: &[f32]) -> TensorData {
        let [n, k] = rank2(shape);
        let packed = berth_kernels::gemm::pack_weights(values, n, k);
        TensorData {
            layout: Layout::Panels,
            ..TensorData::f32(name, shape, &packed)
        }
    }

    /// A linear weight `[N, K]` (row-major `values`) stored as f16 panels.
    pub fn f16_panels(name: impl Into<String>, shape: &[usize], values: &[f16]) -> TensorData {
        let [n, k] = rank2(shape);
        let packed = berth_kernels::gemm::pack_weights(values, n, k);
        TensorData {
            layout: Layout::Panels,
            ..TensorData::f16(name, shape, &packed)
        }
    }

    /// A linear weight `[N, K]` (row-major f32 `values`) rounded to bf16 as the bf16 GEMM
    /// rounds (`berth_kernels::gemm::to_bf16`: to nearest even, denormals flushed) and stored
    /// as bf16 panels (K in pairs).
    pub fn bf16_panels(name: impl Into<String>, shape: &[usize], values: &[f32]) -> TensorData {
        let [n, k] = rank2(shape);
        let packed = berth_kernels::gemm::pack_weights_bf16(values, n, k);
        TensorData {
            layout: Layout::Panels,
            ..TensorData::bf16(name, shape, &packed)
        }
    }

    /// A linear weight `[N, K]` quantised per output channel (`q` row-major, in
    /// `-127..=127`) stored as int8 panels, the channel sums after the bytes.
    pub fn int8_panels(
        name: impl Into<String>,
        shape: &[usize],
        q: &[i8],
        scales: &[f32],
    ) -> TensorData {
        let [n, k] = rank2(shape);
        let packed = berth_kernels::gemm::PackedI8Buf::from_rows(q, scales.to_vec(), n, k);
        let mut bytes: Vec<u8> = packed.q.iter().map(|&v| v as u8).collect();
        bytes.extend(packed.col_sum.iter().flat_map(|v| v.to_le_bytes()));
        TensorData {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: DType::I8,
            layout: Layout::Panels,
            quant: Quant::Int8PerChannel,
            bytes,
            scales: Some(scales.to_vec()),
        }
    }
}

fn rank2(shape: &[usize]) -> [usize; 2] {
    match *shape {
        [n, k] => [n, k],
        _ => panic!("panels need a rank-2 shape, got {shape:?}"),
    }
}

fn raw_config(c: &ModelConfig) -> RawConfig<'_> {
    RawConfig {
        family: c.family.code(),
        head: c.head.code(),
        hidden_act: c.hidden_act.code(),
        has_pooler: c.has_pooler.into(),
        pooling: c.pooling.code(),
        normalize: c.normalize.into(),
        problem_type: c.problem_type.code(),
        tied_decoder: c.tied_decoder.into(),
        vocab_size: c.vocab_size as u64,
        hidden_size: c.hidden_size as u64,
        num_layers: c.num_layers as u64,
        num_heads: c.num_heads as u64,
        intermediate_size: c.intermediate_size as u64,
        max_position_embeddings: c.max_position_embeddings as u64,
        type_vocab_size: c.type_vocab_size as u64,
        layer_norm_eps: c.layer_norm_eps,
        labels: c
            .labels
            .iter()
            .map(|l| Cow::Borrowed(l.as_bytes()))
            .collect(),
    }
}

fn raw_tokenizer(t: &TokenizerConfig) -> RawTokenizer<'_> {
    RawTokenizer {
        kind: t.kind.code(),
        lowercase: t.lowercase.into(),
        strip_accents: match t.strip_accents {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        handle_chinese_chars: t.handle_chinese_chars.into(),
        clean_text: t.clean_text.into(),
        reserved: 0,
        max_length: t.max_length as u64,
        max_input_chars_per_word: t.max_input_chars_per_word as u64,
        continuing_subword_prefix: Cow::Borrowed(t.continuing_subword_prefix.as_bytes()),
        special: [t.unk_id, t.cls_id, t.sep_id, t.pad_id, t.mask_id].map(u64::from),
        vocab: t
            .vocab
            .iter()
            .map(|s| Cow::Borrowed(s.as_bytes()))
            .collect(),
        special_ids: t.special_ids.iter().map(|&id| u64::from(id)).collect(),
    }
}

/// Lays the tensors out (each block at the aligned end of the previous one) and returns the
/// header records and the data section. Exposed so that tests can corrupt one field of a
/// valid layout and re-encode it with [`raw::assemble`].
pub fn to_raw_parts<'a>(
    config: &'a ModelConfig,
    tokenizer: Option<&'a TokenizerConfig>,
    tensors: &'a [TensorData],
) -> (RawHeader<'a>, Vec<u8>) {
    let mut data = Vec::new();
    let mut place = |bytes: &[u8]| -> (u64, u64) {
        let start = align_up(data.len() as u64).expect("in-memory sizes are far below u64::MAX");
        data.resize(start as usize, 0);
        data.extend_from_slice(bytes);
        (start, bytes.len() as u64)
    };
    let mut entries = Vec::with_capacity(tensors.len());
    for t in tensors {
        let (data_offset, data_len) = place(&t.bytes);
        let (scale_offset, scale_len) = match &t.scales {
            Some(s) => place(&s.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
            None => (0, 0),
        };
        let (quant_scheme, quant_version) = t.quant.codes();
        entries.push(RawTensor {
            name: Cow::Borrowed(t.name.as_bytes()),
            dtype: t.dtype.code(),
            layout: t.layout.code(),
            quant_scheme,
            quant_version,
            dims: t.shape.iter().map(|&d| d as u64).collect(),
            data_offset,
            data_len,
            scale_offset,
            scale_len,
        });
    }
    let header = RawHeader {
        config: raw_config(config),
        tokenizer: tokenizer.map(raw_tokenizer),
        tensors: entries,
    };
    (header, data)
}

/// Encodes a whole file image, and checks it by parsing it back. The config, the tokenizer and
/// the tensor names are validated first, so that every string is under its cap when encoded.
pub fn encode(
    config: &ModelConfig,
    tokenizer: Option<&TokenizerConfig>,
    tensors: &[TensorData],
) -> Result<Vec<u8>, FormatError> {
    config.validate()?;
    if let Some(t) = tokenizer {
        t.validate(config)?;
    }
    if let Some(t) = tensors
        .iter()
        .find(|t| t.name.len() as u64 > super::caps::NAME_LEN)
    {
        return Err(FormatError::CapExceeded {
            what: "tensor name",
            value: t.name.len() as u64,
            cap: super::caps::NAME_LEN,
        });
    }
    let (header, data) = to_raw_parts(config, tokenizer, tensors);
    let file = raw::assemble(&header.encode(), &data);
    super::reader::parse(&file)?;
    Ok(file)
}

/// Encodes a file and writes it to `path` through a temporary file in the same directory, so
/// that `path` never holds a partial file. Returns the size in bytes.
pub fn write_file(
    path: impl AsRef<Path>,
    config: &ModelConfig,
    tokenizer: Option<&TokenizerConfig>,
    tensors: &[TensorData],
) -> Result<u64, Error> {
    let path = path.as_ref();
    let bytes = encode(config, tokenizer, tensors)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.partial",
        file_name.as_deref().unwrap_or("model")
    ));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| Error::Io { path: p, source }
    };
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(bytes.len() as u64)
}
