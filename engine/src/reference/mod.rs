//! The reference forward pass: plain, readable f32 Rust that mirrors Hugging Face's
//! `modeling_bert.py` module by module, one struct per `nn.Module` with the class's name.
//! No SIMD, no unsafe. It is the oracle that every fast path is held against, so clarity beats
//! speed here. f16 and int8 files run through it by dequantising their weights at load.
//!
//! Conventions that follow transformers (v5, eager attention) exactly:
//! - the attention mask is additive: `(1 - mask) * f32::MIN` is added to the scaled scores in
//!   f32, so padded keys get probability 0 and padded *query* rows are still computed;
//! - every position of every sequence is computed, padded or not;
//! - sentence embeddings follow sentence-transformers' `Pooling` and `Normalize` modules.

mod ops;

pub use ops::{activate, dot, softmax, LayerNorm, Linear};

use crate::config::{Activation, Head, ModelConfig, Pooling};
use crate::error::{FormatError, InputError};
use crate::format::BerthFile;

/// A dense f32 tensor, row-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The inputs of a forward pass: `batch` sequences of `seq` tokens, row-major, as
/// transformers takes them. A missing attention mask means all ones; missing token types mean
/// all zeros.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: &'a [i64],
    pub attention_mask: Option<&'a [i64]>,
    pub token_type_ids: Option<&'a [i64]>,
}

impl Inputs<'_> {
    /// Element `idx` (row-major) of the attention mask, 1 when there is none.
    pub fn mask(&self, idx: usize) -> i64 {
        self.attention_mask.map_or(1, |m| m[idx])
    }

    /// Element `idx` (row-major) of the token types, 0 when there are none.
    pub fn token_type(&self, idx: usize) -> i64 {
        self.token_type_ids.map_or(0, |t| t[idx])
    }
}

/// The outputs, under transformers' names. Which are present depends on the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor,
    /// `[batch, hidden]`, when the model has a pooler.
    pub pooler_output: Option<Tensor>,
    /// `[batch, seq, vocab]` (masked LM), `[batch, labels]` (sequence classification) or
    /// `[batch, seq, labels]` (token classification).
    pub logits: Option<Tensor>,
    /// `[batch, seq]` (question answering).
    pub start_logits: Option<Tensor>,
    /// `[batch, seq]` (question answering).
    pub end_logits: Option<Tensor>,
    /// `[batch, hidden]`, when the file configures sentence-embedding pooling.
    pub sentence_embedding: Option<Tensor>,
}

impl Outputs {
    /// The present outputs with their transformers names.
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        let mut v = vec![("last_hidden_state", &self.last_hidden_state)];
        let optional = [
            ("pooler_output", &self.pooler_output),
            ("logits", &self.logits),
            ("start_logits", &self.start_logits),
            ("end_logits", &self.end_logits),
            ("sentence_embedding", &self.sentence_embedding),
        ];
        v.extend(
            optional
                .into_iter()
                .filter_map(|(n, t)| t.as_ref().map(|t| (n, t))),
        );
        v
    }
}

/// Weights as f32, taken from a validated file by name.
struct Weights<'a>(&'a BerthFile);

impl Weights<'_> {
    fn get(&self, name: &str) -> Result<Vec<f32>, FormatError> {
        self.0
            .tensor(name)
            .map(|t| t.to_f32_vec())
            .ok_or_else(|| FormatError::MissingTensor {
                name: name.to_owned(),
            })
    }

    fn linear(
        &self,
        prefix: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Linear, FormatError> {
        Ok(Linear {
            weight: self.get(&format!("{prefix}.weight"))?,
            bias: self.get(&format!("{prefix}.bias"))?,
            in_features,
            out_features,
            input_scale: self.get(&format!("{prefix}.input_scale")).ok(),
        })
    }

    fn layer_norm(&self, prefix: &str, eps: f64) -> Result<LayerNorm, FormatError> {
        Ok(LayerNorm {
            weight: self.get(&format!("{prefix}.weight"))?,
            bias: self.get(&format!("{prefix}.bias"))?,
            eps,
        })
    }
}

/// `BertEmbeddings`: word + token type + absolute position embeddings, then LayerNorm
/// (dropout is the identity at inference).
#[derive(Clone, Debug)]
pub struct BertEmbeddings {
    pub word_embeddings: Vec<f32>,
    pub position_embeddings: Vec<f32>,
    pub token_type_embeddings: Vec<f32>,
    pub layer_norm: LayerNorm,
    pub hidden: usize,
}

impl BertEmbeddings {
    /// One sequence's ids (already validated) to `[seq, hidden]`.
    fn forward(&self, ids: &[i64], types: &[i64]) -> Vec<f32> {
        let h = self.hidden;
        let mut x = Vec::with_capacity(ids.len() * h);
        for (pos, (&id, &tt)) in ids.iter().zip(types).enumerate() {
            let w = &self.word_embeddings[id as usize * h..][..h];
            let t = &self.token_type_embeddings[tt as usize * h..][..h];
            let p = &self.position_embeddings[pos * h..][..h];
            // transformers: (inputs_embeds + token_type_embeddings) + position_embeddings, f32.
            x.extend(w.iter().zip(t).zip(p).map(|((w, t), p)| (w + t) + p));
        }
        self.layer_norm.forward(&mut x);
        x
    }
}

/// `BertSelfAttention`: multi-head scaled dot-product attention with an additive mask.
#[derive(Clone, Debug)]
pub struct BertSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub num_heads: usize,
}

impl BertSelfAttention {
    /// `x` is one sequence `[seq, hidden]`; `mask` its attention mask (0 or 1 per key).
    fn forward(&self, x: &[f32], mask: &[i64]) -> Vec<f32> {
        let hidden = self.query.out_features;
        let d = hidden / self.num_heads;
        let seq = mask.len();
        let (q, k, v) = (
            self.query.forward(x),
            self.key.forward(x),
            self.value.forward(x),
        );
        let scaling = (d as f32).powf(-0.5);
        let mut context = vec![0.0f32; seq * hidden];
        let mut scores = vec![0.0f64; seq];
        for head in 0..self.num_heads {
            let cols = head * d..(head + 1) * d;
            for i in 0..seq {
                let qi = &q[i * hidden..][cols.clone()];
                for (j, s) in scores.iter_mut().enumerate() {
                    let kj = &k[j * hidden..][cols.clone()];
                    // f32, as transformers computes `q @ k^T * scaling + mask`, so that a masked
                    // score rounds to f32::MIN exactly as it does there.
                    let mut score = dot(qi, kj) as f32 * scaling;
                    if mask[j] == 0 {
                        score += f32::MIN;
                    }
                    *s = f64::from(score);
                }
                softmax(&mut scores);
                for (c, out) in context[i * hidden..][cols.clone()].iter_mut().enumerate() {
                    let sum: f64 = scores
                        .iter()
                        .enumerate()
                        .map(|(j, p)| p * f64::from(v[j * hidden + head * d + c]))
                        .sum();
                    *out = sum as f32;
                }
            }
        }
        context
    }
}

/// `BertSelfOutput`: dense, then LayerNorm of (dense + residual).
#[derive(Clone, Debug)]
pub struct BertSelfOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

/// `BertOutput` has the same shape of computation as `BertSelfOutput`.
pub type BertOutput = BertSelfOutput;

impl BertSelfOutput {
    fn forward(&self, hidden_states: &[f32], input_tensor: &[f32]) -> Vec<f32> {
        let mut y = self.dense.forward(hidden_states);
        for (a, b) in y.iter_mut().zip(input_tensor) {
            *a += b;
        }
        self.layer_norm.forward(&mut y);
        y
    }
}

/// `BertAttention`: self-attention and its output projection.
#[derive(Clone, Debug)]
pub struct BertAttention {
    pub self_attention: BertSelfAttention,
    pub output: BertSelfOutput,
}

/// `BertIntermediate`: dense, then the activation.
#[derive(Clone, Debug)]
pub struct BertIntermediate {
    pub dense: Linear,
    pub act: Activation,
}

/// `BertLayer`: attention, intermediate, output.
#[derive(Clone, Debug)]
pub struct BertLayer {
    pub attention: BertAttention,
    pub intermediate: BertIntermediate,
    pub output: BertOutput,
}

impl BertLayer {
    fn forward(&self, x: &[f32], mask: &[i64]) -> Vec<f32> {
        let context = self.attention.self_attention.forward(x, mask);
        let attention_output = self.attention.output.forward(&context, x);
        let mut intermediate = self.intermediate.dense.forward(&attention_output);
        activate(self.intermediate.act, &mut intermediate);
        self.output.forward(&intermediate, &attention_output)
    }
}

/// `BertPooler`: tanh(dense(first token)).
#[derive(Clone, Debug)]
pub struct BertPooler {
    pub dense: Linear,
}

impl BertPooler {
    fn forward(&self, first_token: &[f32]) -> Vec<f32> {
        let mut y = self.dense.forward(first_token);
        for v in &mut y {
            *v = v.tanh();
        }
        y
    }
}

/// `BertPredictionHeadTransform` + `BertLMPredictionHead`: dense, activation, LayerNorm, then
/// the decoder (the word embeddings when tied) plus `cls.predictions.bias`.
#[derive(Clone, Debug)]
pub struct BertLmPredictionHead {
    pub transform_dense: Linear,
    pub transform_act: Activation,
    pub transform_layer_norm: LayerNorm,
    pub decoder: Linear,
}

impl BertLmPredictionHead {
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut t = self.transform_dense.forward(x);
        activate(self.transform_act, &mut t);
        self.transform_layer_norm.forward(&mut t);
        self.decoder.forward(&t)
    }
}

/// The task head.
#[derive(Clone, Debug)]
pub enum TaskHead {
    None,
    MaskedLm(BertLmPredictionHead),
    /// `classifier` on the pooler output.
    SequenceClassification(Linear),
    /// `classifier` on every token.
    TokenClassification(Linear),
    /// `qa_outputs` on every token: column 0 is start, column 1 is end.
    QuestionAnswering(Linear),
}

/// The whole model: `BertModel` plus its head and sentence-embedding pooling.
#[derive(Clone, Debug)]
pub struct ReferenceModel {
    pub config: ModelConfig,
    pub embeddings: BertEmbeddings,
    pub layers: Vec<BertLayer>,
    pub pooler: Option<BertPooler>,
    pub head: TaskHead,
}

impl ReferenceModel {
    /// Builds the model from a validated file, widening or dequantising every weight to f32.
    pub fn new(file: &BerthFile) -> Result<ReferenceModel, FormatError> {
        let cfg = file.config().clone();
        let w = Weights(file);
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let embeddings = BertEmbeddings {
            word_embeddings: w.get("embeddings.word_embeddings.weight")?,
            position_embeddings: w.get("embeddings.position_embeddings.weight")?,
            token_type_embeddings: w.get("embeddings.token_type_embeddings.weight")?,
            layer_norm: w.layer_norm("embeddings.LayerNorm", eps)?,
            hidden: h,
        };
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let p = format!("encoder.layer.{l}");
            layers.push(BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: w.linear(&format!("{p}.attention.self.query"), h, h)?,
                        key: w.linear(&format!("{p}.attention.self.key"), h, h)?,
                        value: w.linear(&format!("{p}.attention.self.value"), h, h)?,
                        num_heads: cfg.num_heads,
                    },
                    output: BertSelfOutput {
                        dense: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                        layer_norm: w
                            .layer_norm(&format!("{p}.attention.output.LayerNorm"), eps)?,
                    },
                },
                intermediate: BertIntermediate {
                    dense: w.linear(&format!("{p}.intermediate.dense"), h, i)?,
                    act: cfg.hidden_act,
                },
                output: BertOutput {
                    dense: w.linear(&format!("{p}.output.dense"), i, h)?,
                    layer_norm: w.layer_norm(&format!("{p}.output.LayerNorm"), eps)?,
                },
            });
        }
        let pooler = if cfg.has_pooler {
            Some(BertPooler {
                dense: w.linear("pooler.dense", h, h)?,
            })
        } else {
            None
        };
        let head = match cfg.head {
            Head::None => TaskHead::None,
            Head::MaskedLm => {
                let decoder_name = if cfg.tied_decoder {
                    "embeddings.word_embeddings.weight"
                } else {
                    "cls.predictions.decoder.weight"
                };
                TaskHead::MaskedLm(BertLmPredictionHead {
                    transform_dense: w.linear("cls.predictions.transform.dense", h, h)?,
                    transform_act: cfg.hidden_act,
                    transform_layer_norm: w
                        .layer_norm("cls.predictions.transform.LayerNorm", eps)?,
                    decoder: Linear {
                        weight: w.get(decoder_name)?,
                        bias: w.get("cls.predictions.bias")?,
                        in_features: h,
                        out_features: cfg.vocab_size,
                        input_scale: None,
                    },
                })
            }
            Head::SequenceClassification => {
                TaskHead::SequenceClassification(w.linear("classifier", h, cfg.labels.len())?)
            }
            Head::TokenClassification => {
                TaskHead::TokenClassification(w.linear("classifier", h, cfg.labels.len())?)
            }
            Head::QuestionAnswering => TaskHead::QuestionAnswering(w.linear("qa_outputs", h, 2)?),
        };
        Ok(ReferenceModel {
            config: cfg,
            embeddings,
            layers,
            pooler,
            head,
        })
    }

    /// Checks the inputs and returns the mask and token types, defaulted where absent.
    fn check_inputs(&self, inputs: &Inputs<'_>) -> Result<(Vec<i64>, Vec<i64>), InputError> {
        check_inputs(&self.config, inputs)
    }

    /// Runs the model on a batch. Sequences are independent: each runs alone, as if in a batch
    /// of one padded to `seq`.
    pub fn forward(&self, inputs: &Inputs<'_>) -> Result<Outputs, InputError> {
        let (mask, types) = self.check_inputs(inputs)?;
        let cfg = &self.config;
        let (batch, seq, h) = (inputs.batch, inputs.seq, cfg.hidden_size);
        let mut hidden = Vec::with_capacity(batch * seq * h);
        let mut pooled = Vec::new();
        let mut logits = Vec::new();
        let mut sentence = Vec::new();
        for b in 0..batch {
            let rows = b * seq..(b + 1) * seq;
            let m = &mask[rows.clone()];
            let mut x = self
                .embeddings
                .forward(&inputs.input_ids[rows.clone()], &types[rows]);
            for layer in &self.layers {
                x = layer.forward(&x, m);
            }
            let pooler_output = self.pooler.as_ref().map(|p| p.forward(&x[..h]));
            match &self.head {
                TaskHead::None => {}
                TaskHead::MaskedLm(head) => logits.extend(head.forward(&x)),
                TaskHead::SequenceClassification(c) => {
                    // Validation guarantees a pooler with this head.
                    if let Some(p) = &pooler_output {
                        logits.extend(c.forward(p));
                    }
                }
                TaskHead::TokenClassification(c) | TaskHead::QuestionAnswering(c) => {
                    logits.extend(c.forward(&x))
                }
            }
            if cfg.pooling != Pooling::None {
                sentence.extend(pool(cfg.pooling, cfg.normalize, &x, m, h));
            }
            if let Some(p) = pooler_output {
                pooled.extend(p);
            }
            hidden.extend(x);
        }
        let tensor = |shape: Vec<usize>, data: Vec<f32>| Tensor { shape, data };
        let mut out = Outputs {
            last_hidden_state: tensor(vec![batch, seq, h], hidden),
            pooler_output: self.pooler.as_ref().map(|_| tensor(vec![batch, h], pooled)),
            logits: None,
            start_logits: None,
            end_logits: None,
            sentence_embedding: (cfg.pooling != Pooling::None)
                .then(|| tensor(vec![batch, h], sentence)),
        };
        match cfg.head {
            Head::None => {}
            Head::MaskedLm => out.logits = Some(tensor(vec![batch, seq, cfg.vocab_size], logits)),
            Head::SequenceClassification => {
                out.logits = Some(tensor(vec![batch, cfg.labels.len()], logits))
            }
            Head::TokenClassification => {
                out.logits = Some(tensor(vec![batch, seq, cfg.labels.len()], logits))
            }
            Head::QuestionAnswering => {
                let (start, end) = logits.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
                out.start_logits = Some(tensor(vec![batch, seq], start));
                out.end_logits = Some(tensor(vec![batch, seq], end));
            }
        }
        Ok(out)
    }
}

/// Checks the inputs against the config without allocating: lengths, positions, token ids,
/// token types and mask values. A missing mask reads as all ones, missing types as all zeros.
/// Shared by the reference and the fast path, so both refuse exactly the same inputs.
pub(crate) fn validate_inputs(cfg: &ModelConfig, inputs: &Inputs<'_>) -> Result<(), InputError> {
    let Inputs { batch, seq, .. } = *inputs;
    let expected = batch.saturating_mul(seq);
    let check_len = |what, found: usize| {
        if found == expected {
            Ok(())
        } else {
            Err(InputError::ShapeMismatch {
                what,
                batch,
                seq,
                found,
                expected,
            })
        }
    };
    check_len("input_ids", inputs.input_ids.len())?;
    if batch > 0 && seq == 0 {
        return Err(InputError::EmptySequence { batch });
    }
    if seq > cfg.max_position_embeddings {
        return Err(InputError::SequenceTooLong {
            seq,
            max: cfg.max_position_embeddings,
        });
    }
    if let Some(m) = inputs.attention_mask {
        check_len("attention_mask", m.len())?;
    }
    if let Some(t) = inputs.token_type_ids {
        check_len("token_type_ids", t.len())?;
    }
    for idx in 0..expected {
        let (b, pos) = (idx / seq, idx % seq);
        let id = inputs.input_ids[idx];
        if !(0..cfg.vocab_size as i64).contains(&id) {
            return Err(InputError::TokenIdOutOfRange {
                batch: b,
                pos,
                id,
                vocab_size: cfg.vocab_size,
            });
        }
        let tt = inputs.token_type(idx);
        if !(0..cfg.type_vocab_size as i64).contains(&tt) {
            return Err(InputError::TypeIdOutOfRange {
                batch: b,
                pos,
                id: tt,
                type_vocab_size: cfg.type_vocab_size,
            });
        }
        let m = inputs.mask(idx);
        if !matches!(m, 0 | 1) {
            return Err(InputError::BadMask {
                batch: b,
                pos,
                value: m,
            });
        }
    }
    Ok(())
}

/// [`validate_inputs`], then the mask and token types, defaulted where absent.
pub(crate) fn check_inputs(
    cfg: &ModelConfig,
    inputs: &Inputs<'_>,
) -> Result<(Vec<i64>, Vec<i64>), InputError> {
    validate_inputs(cfg, inputs)?;
    let n = inputs.batch * inputs.seq;
    Ok((
        (0..n).map(|i| inputs.mask(i)).collect(),
        (0..n).map(|i| inputs.token_type(i)).collect(),
    ))
}

/// sentence-transformers' `Pooling` (one mode) and optional `Normalize`, for one sequence
/// `x` `[seq, h]` with its attention mask.
pub fn pool(mode: Pooling, normalize: bool, x: &[f32], mask: &[i64], h: usize) -> Vec<f32> {
    if mode == Pooling::None {
        return Vec::new();
    }
    let rows = x
        .chunks_exact(h)
        .zip(mask)
        .filter(|(_, &m)| m == 1)
        .map(|(r, _)| r);
    let mut out = vec![0.0f32; h];
    pool_into(mode, normalize, &x[..h], rows, &mut vec![0.0; h], &mut out);
    out
}

/// [`pool`] into `out` (`h` values) over the real `rows` (each `h` long) with `first` the
/// sequence's first token (CLS pooling), accumulating in `acc` (`h` f64): no allocation. The
/// fast path pools through this too, so the two agree bit for bit.
pub(crate) fn pool_into<'a>(
    mode: Pooling,
    normalize: bool,
    first: &[f32],
    rows: impl Iterator<Item = &'a [f32]>,
    acc: &mut [f64],
    out: &mut [f32],
) {
    match mode {
        Pooling::None => return,
        Pooling::Cls => {
            for (a, &v) in acc.iter_mut().zip(first) {
                *a = f64::from(v);
            }
        }
        Pooling::Mean | Pooling::MeanSqrtLen => {
            acc.fill(0.0);
            let mut count = 0usize;
            for r in rows {
                for (s, v) in acc.iter_mut().zip(r) {
                    *s += f64::from(*v);
                }
                count += 1;
            }
            // sentence-transformers clamps the token count at 1e-9.
            let denom = if mode == Pooling::Mean {
                (count as f64).max(1e-9)
            } else {
                (count as f64).max(1e-9).sqrt()
            };
            for s in acc.iter_mut() {
                *s /= denom;
            }
        }
        Pooling::Max => {
            // Masked positions are set to -1e9 before the max, as sentence-transformers does.
            acc.fill(-1e9);
            for r in rows {
                for (a, v) in acc.iter_mut().zip(r) {
                    *a = a.max(f64::from(*v));
                }
            }
        }
    }
    if normalize {
        // torch.nn.functional.normalize: x / max(||x||, 1e-12).
        let norm = acc.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        for v in acc.iter_mut() {
            *v /= norm;
        }
    }
    for (o, a) in out.iter_mut().zip(acc.iter()) {
        *o = *a as f32;
    }
}
