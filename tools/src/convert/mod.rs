//! `berth convert`: a Hugging Face BERT checkpoint directory to one `.berth` file.
//!
//! Reads config.json, model.safetensors, tokenizer.json or vocab.txt (+ tokenizer_config.json,
//! special_tokens_map.json), and sentence-transformers' modules.json, 1_Pooling/config.json and
//! sentence_bert_config.json when present. Tensor names may carry the `bert.` prefix of task
//! models or not; old `LayerNorm.gamma`/`beta` names are accepted. Weights must be finite.
//!
//! Storage policy per output dtype (docs/FORMAT.md lists what each tensor may be):
//! - `f32`: everything f32.
//! - `f16`: linear weights and embedding tables f16; biases and LayerNorm f32.
//! - `int8`: linear weights int8, symmetric per output channel; embeddings, biases and
//!   LayerNorm f32; with a tokenizer, the encoder's linear layers smoothed first (`smooth`),
//!   their input scales stored beside them (format 1.2).

mod config;
mod error;
mod json;
pub mod smooth;

use std::collections::BTreeMap;
use std::path::Path;

use berth::config::{Head, ModelConfig, TokenizerConfig};
use berth::format::{DType, TensorData};
use berth::schema::{self, Role};
use berth_kernels::gemm::to_bf16;
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

pub use berth::tokenizer::hf::TokenizerSource;
pub(crate) use error::io;
pub use error::ConvertError;

/// The element type of the linear weights in the output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDtype {
    F32,
    F16,
    /// Linear weights in bfloat16 (format 1.3), computed by the bf16 GEMM; embeddings f32.
    Bf16,
    Int8,
}

impl OutDtype {
    pub fn name(self) -> &'static str {
        match self {
            OutDtype::F32 => "f32",
            OutDtype::F16 => "f16",
            OutDtype::Bf16 => "bf16",
            OutDtype::Int8 => "int8",
        }
    }

    /// The dtype a tensor of this role is stored in.
    pub fn storage(self, role: Role) -> DType {
        match (self, role) {
            (_, Role::Vector) | (OutDtype::F32, _) => DType::F32,
            (OutDtype::F16, _) => DType::F16,
            (OutDtype::Int8, Role::Linear) => DType::I8,
            (OutDtype::Bf16, Role::Linear) => DType::Bf16,
            // Read a row per token, so their size costs no time: kept at full precision.
            (OutDtype::Int8 | OutDtype::Bf16, Role::Embedding) => DType::F32,
        }
    }
}

/// Conversion options.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub dtype: OutDtype,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// int8 only: calibrate and apply the scale migration of [`smooth`] (needs a tokenizer for
    /// the calibration texts; without one the file is quantised without it, with a note).
    pub smoothing: bool,
}

impl Options {
    /// `dtype`, no progress bar, smoothing on.
    pub fn new(dtype: OutDtype) -> Options {
        Options {
            dtype,
            progress: false,
            smoothing: true,
        }
    }
}

/// How one tensor was stored, and what storing it cost in accuracy.
#[derive(Clone, Debug)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub bytes: usize,
    /// max |w - stored(w)|.
    pub max_abs_err: f64,
    /// ||w - stored(w)|| / ||w||.
    pub rel_rms_err: f64,
}

/// What a conversion did.
#[derive(Clone, Debug)]
pub struct Report {
    pub architecture: &'static str,
    pub dtype: OutDtype,
    pub params: u64,
    pub file_bytes: u64,
    pub tensors: Vec<TensorReport>,
    pub tokenizer: Option<TokenizerSource>,
    pub notes: Vec<String>,
}

/// A converted model, ready to be written.
#[derive(Debug)]
pub struct Converted {
    pub config: ModelConfig,
    pub tokenizer: Option<TokenizerConfig>,
    pub tensors: Vec<TensorData>,
    pub report: Report,
}

/// Maps a checkpoint name to berth's: drops `bert.`, renames `LayerNorm.gamma`/`beta`.
fn canonical_name(hf: &str) -> String {
    let s = hf.strip_prefix("bert.").unwrap_or(hf);
    if let Some(p) = s.strip_suffix("LayerNorm.gamma") {
        format!("{p}LayerNorm.weight")
    } else if let Some(p) = s.strip_suffix("LayerNorm.beta") {
        format!("{p}LayerNorm.bias")
    } else {
        s.to_owned()
    }
}

/// Buffers that checkpoints carry beside the weights.
fn is_buffer(name: &str) -> bool {
    matches!(
        name,
        "embeddings.position_ids" | "embeddings.token_type_ids"
    )
}

/// Whether a tensor belongs to a task head (the one this config has or another).
fn is_head_tensor(name: &str) -> bool {
    ["cls.", "classifier.", "qa_outputs."]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Reads one checkpoint tensor as f32.
fn tensor_f32(
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<Vec<f32>, ConvertError> {
    let b = view.data();
    let v: Vec<f32> = match view.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            })
            .collect(),
        other => {
            return Err(ConvertError::UnsupportedDtype {
                name: name.to_owned(),
                dtype: format!("{other:?}"),
            })
        }
    };
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(ConvertError::NonFinite {
            name: name.to_owned(),
            index,
            value: v[index],
        });
    }
    Ok(v)
}

/// Stores `values` (finite) as `dtype`, measuring the error that costs.
fn store(
    name: &str,
    shape: &[usize],
    values: &[f32],
    dtype: DType,
    panels: bool,
) -> Result<(TensorData, TensorReport), ConvertError> {
    let (data, approx): (TensorData, Vec<f32>) = match dtype {
        DType::F32 if panels => (TensorData::f32_panels(name, shape, values), values.to_vec()),
        DType::F32 => (TensorData::f32(name, shape, values), values.to_vec()),
        DType::F16 => {
            let mut h = vec![f16::ZERO; values.len()];
            berth_kernels::convert::f32_to_f16(values, &mut h);
            if let Some(index) = h.iter().position(|v| !v.is_finite()) {
                return Err(ConvertError::Overflow {
                    name: name.to_owned(),
                    dtype: "f16",
                    index,
                    value: values[index],
                });
            }
            let mut back = vec![0.0; values.len()];
            berth_kernels::convert::f16_to_f32(&h, &mut back);
            let data = if panels {
                TensorData::f16_panels(name, shape, &h)
            } else {
                TensorData::f16(name, shape, &h)
            };
            (data, back)
        }
        DType::Bf16 => {
            // Rounded as the bf16 GEMM rounds its operands (to nearest even, denormals
            // flushed), so the file holds exactly what `use_bf16` would compute with.
            let b: Vec<bf16> = values.iter().map(|&v| to_bf16(v)).collect();
            if let Some(index) = b.iter().position(|v| !v.is_finite()) {
                return Err(ConvertError::Overflow {
                    name: name.to_owned(),
                    dtype: "bf16",
                    index,
                    value: values[index],
                });
            }
            let back = b.iter().map(|v| v.to_f32()).collect();
            let data = if panels {
                TensorData::bf16_panels(name, shape, values)
            } else {
                TensorData::bf16(name, shape, &b)
            };
            (data, back)
        }
        DType::I8 => {
            let cols = shape[1..].iter().product::<usize>();
            let mut q = vec![0i8; values.len()];
            let mut back = vec![0.0; values.len()];
            let mut scales = Vec::with_capacity(shape[0]);
            for ((row, qr), br) in values
                .chunks_exact(cols)
                .zip(q.chunks_exact_mut(cols))
                .zip(back.chunks_exact_mut(cols))
            {
                let s = berth_kernels::quant::quantize_row_i8(row, qr);
                berth_kernels::quant::dequantize_row_i8(qr, s, br);
                scales.push(s);
            }
            let data = if panels {
                TensorData::int8_panels(name, shape, &q, &scales)
            } else {
                TensorData::int8_per_channel(name, shape, &q, &scales)
            };
            (data, back)
        }
    };
    let (mut max_abs, mut err2, mut norm2) = (0.0f64, 0.0f64, 0.0f64);
    for (w, a) in values.iter().zip(&approx) {
        let d = f64::from(*w) - f64::from(*a);
        max_abs = max_abs.max(d.abs());
        err2 += d * d;
        norm2 += f64::from(*w) * f64::from(*w);
    }
    let report = TensorReport {
        name: name.to_owned(),
        shape: shape.to_vec(),
        dtype,
        bytes: data.bytes.len() + data.scales.as_ref().map_or(0, |s| s.len() * 4),
        max_abs_err: max_abs,
        rel_rms_err: if norm2 > 0.0 {
            (err2 / norm2).sqrt()
        } else {
            0.0
        },
    };
    Ok((data, report))
}

/// The checkpoint's tensors, looked up by berth name.
struct Checkpoint<'a> {
    st: &'a SafeTensors<'a>,
    path: &'a Path,
}

impl<'a> Checkpoint<'a> {
    fn view<'n>(
        &self,
        names: &'n BTreeMap<String, String>,
        name: &str,
    ) -> Result<(&'n String, safetensors::tensor::TensorView<'a>), ConvertError> {
        let hf = names.get(name).ok_or_else(|| ConvertError::MissingTensor {
            name: name.to_owned(),
        })?;
        let view = self.st.tensor(hf).map_err(|e| ConvertError::Safetensors {
            path: self.path.to_owned(),
            message: e.to_string(),
        })?;
        Ok((hf, view))
    }

    fn load(&self, names: &BTreeMap<String, String>, name: &str) -> Result<Vec<f32>, ConvertError> {
        let (hf, view) = self.view(names, name)?;
        tensor_f32(hf, &view)
    }
}

/// Converts a checkpoint directory.
pub fn convert_dir(dir: &Path, opts: &Options) -> Result<Converted, ConvertError> {
    let parsed = config::read_config(dir)?;
    let mut cfg = parsed.config;
    let mut notes = parsed.notes;

    let st_path = dir.join("model.safetensors");
    if !st_path.exists() {
        let what = if dir.join("model.safetensors.index.json").exists() {
            "model.safetensors (sharded checkpoints are not supported yet)"
        } else {
            "model.safetensors"
        };
        return Err(ConvertError::MissingFile {
            path: st_path,
            what,
        });
    }
    let bytes = std::fs::read(&st_path).map_err(io(&st_path))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ConvertError::Safetensors {
        path: st_path.clone(),
        message: e.to_string(),
    })?;

    // berth name -> checkpoint name.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for hf in st.names() {
        let canon = canonical_name(hf);
        if is_buffer(&canon) {
            continue;
        }
        if let Some(other) = names.insert(canon, hf.to_owned()) {
            return Err(ConvertError::DuplicateTensor {
                name: hf.to_owned(),
                other,
            });
        }
    }
    let checkpoint = Checkpoint {
        st: &st,
        path: &st_path,
    };

    cfg.has_pooler = names.contains_key("pooler.dense.weight");
    if cfg.head == Head::SequenceClassification && !cfg.has_pooler {
        return Err(ConvertError::MissingTensor {
            name: "bert.pooler.dense.weight".into(),
        });
    }
    if cfg.head == Head::MaskedLm {
        cfg.tied_decoder = parsed.tie_word_embeddings;
        if cfg.tied_decoder && names.contains_key("cls.predictions.decoder.weight") {
            // Older checkpoints store the tied decoder too: it must be the embeddings.
            if checkpoint.load(&names, "cls.predictions.decoder.weight")?
                != checkpoint.load(&names, "embeddings.word_embeddings.weight")?
            {
                return Err(ConvertError::UntiedDecoder {
                    name: "cls.predictions.decoder.weight".into(),
                });
            }
            names.remove("cls.predictions.decoder.weight");
        }
        if names.contains_key("cls.predictions.decoder.bias") {
            if checkpoint.load(&names, "cls.predictions.decoder.bias")?
                != checkpoint.load(&names, "cls.predictions.bias")?
            {
                return Err(ConvertError::UntiedDecoder {
                    name: "cls.predictions.decoder.bias".into(),
                });
            }
            names.remove("cls.predictions.decoder.bias");
        }
    }
    cfg.validate()?;
    let expected = schema::expected_tensors(&cfg);
    let mut ignored = Vec::new();
    for name in names.keys() {
        if !expected.iter().any(|e| &e.name == name) {
            if is_head_tensor(name) {
                ignored.push(name.clone());
            } else {
                return Err(ConvertError::UnknownTensor {
                    name: names[name].clone(),
                    architecture: cfg.head.architecture().to_owned(),
                });
            }
        }
    }
    if !ignored.is_empty() {
        notes.push(format!(
            "ignored {} tensor(s) not used by {}: {}",
            ignored.len(),
            cfg.head.architecture(),
            ignored.join(", ")
        ));
    }

    let bar = if opts.progress {
        indicatif::ProgressBar::new(expected.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_message("reading");
    let mut values = Vec::with_capacity(expected.len());
    for e in &expected {
        let (hf, view) = checkpoint.view(&names, &e.name)?;
        if view.shape() != e.shape.as_slice() {
            return Err(ConvertError::ShapeMismatch {
                name: hf.clone(),
                expected: e.shape.clone(),
                found: view.shape().to_vec(),
            });
        }
        values.push(tensor_f32(hf, &view)?);
        bar.inc(1);
    }

    let tokenizer = berth::tokenizer::hf::read_tokenizer(
        dir,
        cfg.max_position_embeddings,
        parsed.st_max_seq_length,
    )?;
    let (tokenizer, source) = match tokenizer {
        Some((t, s)) => {
            if s.ignored_added_tokens > 0 {
                notes.push(format!(
                    "{} non-special added token(s) of tokenizer.json are not carried (WordPiece vocabulary and special tokens only)",
                    s.ignored_added_tokens
                ));
            }
            (Some(t), Some(s))
        }
        None => {
            notes.push("no tokenizer.json or vocab.txt: the file carries no tokenizer, only id-level use (berth run) works".into());
            (None, None)
        }
    };
    if let Some(t) = &tokenizer {
        t.validate(&cfg)?;
    }

    // int8: migrate activation outliers into the weights (smooth.rs), per encoder layer.
    let mut input_scales: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    if opts.dtype == OutDtype::Int8 && opts.smoothing {
        match &tokenizer {
            Some(t) => {
                bar.set_message("calibrating");
                let f32_tensors: Vec<TensorData> = expected
                    .iter()
                    .zip(&values)
                    .map(|(e, v)| TensorData::f32(e.name.clone(), &e.shape, v))
                    .collect();
                let (ranges, cal) = smooth::calibrate(&cfg, t, &f32_tensors)?;
                drop(f32_tensors);
                smooth_layers(&cfg, &expected, &mut values, &ranges, &mut input_scales);
                notes.push(format!(
                    "int8: smoothed the encoder's linear layers (SmoothQuant, alpha {}), calibrated on {} built-in texts ({} tokens)",
                    smooth::ALPHA, cal.texts, cal.tokens
                ));
            }
            None => notes.push(
                "int8: no tokenizer to calibrate with, so the linear layers are not smoothed (less accurate)".into(),
            ),
        }
    }

    bar.set_message("converting");
    let mut tensors = Vec::with_capacity(expected.len() + input_scales.len());
    let mut reports = Vec::with_capacity(expected.len() + input_scales.len());
    let mut params = 0u64;
    for (e, values) in expected.iter().zip(&values) {
        // Linear weights go in the GEMM's panels, read in place at run time.
        let panels = e.role == Role::Linear;
        let dtype = opts.dtype.storage(e.role);
        let (data, report) = store(&e.name, &e.shape, values, dtype, panels)?;
        params += values.len() as u64;
        tensors.push(data);
        reports.push(report);
        let prefix = e.name.strip_suffix(".weight").unwrap_or(&e.name);
        if let Some(scale) = input_scales.get(&format!("{prefix}.input_scale")) {
            let name = format!("{prefix}.input_scale");
            let (data, report) = store(&name, &[scale.len()], scale, DType::F32, false)?;
            tensors.push(data);
            reports.push(report);
        }
    }
    bar.finish_and_clear();

    Ok(Converted {
        report: Report {
            architecture: cfg.head.architecture(),
            dtype: opts.dtype,
            params,
            file_bytes: 0,
            tensors: reports,
            tokenizer: source,
            notes,
        },
        config: cfg,
        tokenizer,
        tensors,
    })
}

/// Smooths each encoder layer's linear weights in `values` (row-major f32, in `expected`'s
/// order) for the measured input `ranges`, recording each layer's input scales by name.
fn smooth_layers(
    cfg: &ModelConfig,
    expected: &[schema::Expected],
    values: &mut [Vec<f32>],
    ranges: &berth::fast::InputRanges,
    input_scales: &mut BTreeMap<String, Vec<f32>>,
) {
    let index = |name: &str| expected.iter().position(|e| e.name == name);
    for (l, r) in ranges.layers.iter().enumerate().take(cfg.num_layers) {
        let p = format!("encoder.layer.{l}");
        let groups: [(&[f32], Vec<String>); 4] = [
            (
                &r.qkv,
                ["query", "key", "value"]
                    .map(|q| format!("{p}.attention.self.{q}"))
                    .to_vec(),
            ),
            (&r.attn_out, vec![format!("{p}.attention.output.dense")]),
            (&r.up, vec![format!("{p}.intermediate.dense")]),
            (&r.down, vec![format!("{p}.output.dense")]),
        ];
        for (x_max, prefixes) in groups {
            let ids: Vec<usize> = prefixes
                .iter()
                .filter_map(|q| index(&format!("{q}.weight")))
                .collect();
            if ids.len() != prefixes.len() {
                continue;
            }
            let mut w_max = vec![0.0f32; x_max.len()];
            for &i in &ids {
                smooth::fold_column_max(&mut w_max, &values[i]);
            }
            let s = smooth::factors(x_max, &w_max);
            for (&i, q) in ids.iter().zip(&prefixes) {
                let scale = smooth::migrate(&mut values[i], &s);
                input_scales.insert(format!("{q}.input_scale"), scale);
            }
        }
    }
}

/// Converts a checkpoint directory and writes the `.berth` file.
pub fn convert_to_file(dir: &Path, out: &Path, opts: &Options) -> Result<Report, ConvertError> {
    let c = convert_dir(dir, opts)?;
    let bytes = berth::format::write_file(out, &c.config, c.tokenizer.as_ref(), &c.tensors)?;
    Ok(Report {
        file_bytes: bytes,
        ..c.report
    })
}
