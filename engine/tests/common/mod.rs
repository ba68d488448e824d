//! A micro model (a few kB) built in code, for format tests: every role, every dtype and both
//! layouts occur.
#![allow(dead_code)]

use berth::config::{
    Activation, Family, Head, ModelConfig, Pooling, ProblemType, TokenizerConfig, TokenizerKind,
    Vocab,
};
use berth::format::{DType, Layout, TensorData};
use berth::schema::{expected_tensors, Expected, Role};
use half::{bf16, f16};

/// A deterministic stream of values in [-1, 1) (a 64-bit LCG; no dependency needed).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

pub fn micro_config(head: Head) -> ModelConfig {
    let labels = match head {
        Head::SequenceClassification | Head::TokenClassification => {
            vec!["NEG".to_owned(), "NEU".to_owned(), "POS".to_owned()]
        }
        _ => vec![],
    };
    ModelConfig {
        family: Family::Bert,
        head,
        hidden_act: Activation::Gelu,
        has_pooler: head != Head::TokenClassification,
        pooling: Pooling::Mean,
        normalize: true,
        problem_type: if head == Head::SequenceClassification {
            ProblemType::SingleLabel
        } else {
            ProblemType::Unspecified
        },
        tied_decoder: head == Head::MaskedLm,
        vocab_size: 16,
        hidden_size: 8,
        num_layers: 1,
        num_heads: 2,
        intermediate_size: 16,
        max_position_embeddings: 8,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        labels,
    }
}

pub fn micro_tokenizer(cfg: &ModelConfig) -> TokenizerConfig {
    let mut tokens = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    while tokens.len() < cfg.vocab_size {
        tokens.push(format!("w{}", tokens.len()));
    }
    TokenizerConfig {
        kind: TokenizerKind::WordPiece,
        lowercase: true,
        strip_accents: None,
        handle_chinese_chars: true,
        clean_text: true,
        max_length: cfg.max_position_embeddings,
        max_input_chars_per_word: 100,
        continuing_subword_prefix: "##".into(),
        unk_id: 1,
        cls_id: 2,
        sep_id: 3,
        pad_id: 0,
        mask_id: 4,
        vocab: Vocab::from_tokens(&tokens).unwrap(),
        special_ids: vec![0, 1, 2, 3, 4],
    }
}

/// One tensor of `shape` with deterministic values stored as `dtype`, row-major.
pub fn tensor(name: &str, shape: &[usize], dtype: DType, rng: &mut Lcg) -> TensorData {
    tensor_in(name, shape, dtype, Layout::RowMajor, rng)
}

/// One tensor of `shape` with deterministic values stored as `dtype` in `layout`.
pub fn tensor_in(
    name: &str,
    shape: &[usize],
    dtype: DType,
    layout: Layout,
    rng: &mut Lcg,
) -> TensorData {
    tensor_scaled(name, shape, dtype, layout, 1.0, rng)
}

/// As [`tensor_in`], with values in `[-scale, scale)`.
pub fn tensor_scaled(
    name: &str,
    shape: &[usize],
    dtype: DType,
    layout: Layout,
    scale: f32,
    rng: &mut Lcg,
) -> TensorData {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.next_f32() * scale).collect();
    let panels = layout == Layout::Panels;
    match dtype {
        DType::F32 if panels => TensorData::f32_panels(name, shape, &values),
        DType::F32 => TensorData::f32(name, shape, &values),
        DType::F16 => {
            let h: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
            if panels {
                TensorData::f16_panels(name, shape, &h)
            } else {
                TensorData::f16(name, shape, &h)
            }
        }
        DType::Bf16 if panels => TensorData::bf16_panels(name, shape, &values),
        DType::Bf16 => {
            let b: Vec<bf16> = values
                .iter()
                .map(|&v| berth_kernels::gemm::to_bf16(v))
                .collect();
            TensorData::bf16(name, shape, &b)
        }
        DType::I8 => {
            let cols = shape[1];
            let mut q = vec![0i8; n];
            let scales: Vec<f32> = values
                .chunks_exact(cols)
                .zip(q.chunks_exact_mut(cols))
                .map(|(r, qr)| berth_kernels::quant::quantize_row_i8(r, qr))
                .collect();
            if panels {
                TensorData::int8_panels(name, shape, &q, &scales)
            } else {
                TensorData::int8_per_channel(name, shape, &q, &scales)
            }
        }
    }
}

/// The micro config grown to sizes that reach the kernels' edges (hidden 64 over 4 heads,
/// intermediate 96 and vocabulary 50, not multiples of the 32-wide panels), 2 layers, 40
/// positions, with activation `act`.
pub fn small_config(head: Head, act: Activation) -> ModelConfig {
    let mut c = micro_config(head);
    c.hidden_act = act;
    c.vocab_size = 50;
    c.hidden_size = 64;
    c.num_heads = 4;
    c.intermediate_size = 96;
    c.num_layers = 2;
    c.max_position_embeddings = 40;
    c
}

/// An int8 linear weight's input scales (format 1.2): `[in_features]` factors in `[0.5, 2)`.
pub fn input_scale(weight: &Expected, rng: &mut Lcg) -> TensorData {
    let prefix = weight.name.strip_suffix(".weight").unwrap();
    let k = weight.shape[1];
    let values: Vec<f32> = (0..k).map(|_| 1.25 + 0.75 * rng.next_f32()).collect();
    TensorData::f32(format!("{prefix}.input_scale"), &[k], &values)
}

/// The tensors of `cfg` with every linear weight in `dtype`, in panels (int8 ones with input
/// scales), everything else f32 and row-major; values scaled by 0.2.
pub fn panel_tensors(cfg: &ModelConfig, dtype: DType, seed: u64) -> Vec<TensorData> {
    let mut rng = Lcg(seed);
    let mut tensors = Vec::new();
    for e in expected_tensors(cfg) {
        let (dt, layout) = match e.role {
            Role::Linear => (dtype, Layout::Panels),
            _ => (DType::F32, Layout::RowMajor),
        };
        tensors.push(tensor_scaled(&e.name, &e.shape, dt, layout, 0.2, &mut rng));
        if e.role == Role::Linear && dt == DType::I8 {
            tensors.push(input_scale(&e, &mut rng));
        }
    }
    tensors
}

/// The tensors of `cfg`; linear weights cycle through i8, f16, f32 and bf16, the first four
/// row-major and the next four in panels, so every pair appears in a model with 8 linear
/// weights (the micro model has 7 or 8); every other int8 weight has input scales.
pub fn micro_tensors(cfg: &ModelConfig, seed: u64) -> Vec<TensorData> {
    let mut rng = Lcg(seed);
    let (mut linear, mut int8) = (0, 0);
    let mut out = Vec::new();
    for e in expected_tensors(cfg) {
        let (dtype, layout) = match e.role {
            Role::Vector => (DType::F32, Layout::RowMajor),
            Role::Embedding => (DType::F16, Layout::RowMajor),
            Role::Linear => {
                linear += 1;
                let layout = [Layout::RowMajor, Layout::Panels][(linear / 4) % 2];
                (
                    [DType::I8, DType::F16, DType::F32, DType::Bf16][linear % 4],
                    layout,
                )
            }
        };
        out.push(tensor_in(&e.name, &e.shape, dtype, layout, &mut rng));
        if dtype == DType::I8 {
            int8 += 1;
            if int8 % 2 == 1 {
                out.push(input_scale(&e, &mut rng));
            }
        }
    }
    out
}

/// A valid micro file (sequence classification, with tokenizer).
pub fn micro_parts() -> (ModelConfig, TokenizerConfig, Vec<TensorData>) {
    let cfg = micro_config(Head::SequenceClassification);
    let tok = micro_tokenizer(&cfg);
    let tensors = micro_tensors(&cfg, 7);
    (cfg, tok, tensors)
}

pub fn micro_file() -> Vec<u8> {
    let (cfg, tok, tensors) = micro_parts();
    berth::format::encode(&cfg, Some(&tok), &tensors).unwrap()
}
