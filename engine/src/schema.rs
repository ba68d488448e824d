//! The exact set of tensors a model with a given config holds: names (Hugging Face's
//! `BertModel` names, without the `bert.` prefix of task models), shapes, and which dtypes each
//! may be stored in. docs/FORMAT.md, "Which tensors a file holds", is this table in prose.

use crate::config::{Head, ModelConfig};
use crate::format::DType;

/// What a tensor is, which decides the dtypes it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A lookup table (word, position, token-type embeddings): f32 or f16.
    Embedding,
    /// The weight of a linear layer, `[out, in]`: f32, f16, bf16 (since 1.3), or int8 per
    /// output channel.
    Linear,
    /// A bias or a LayerNorm parameter: f32.
    Vector,
}

impl Role {
    /// Whether a tensor of this role may be stored as `dtype`.
    pub fn allows(self, dtype: DType) -> bool {
        match self {
            Role::Embedding => matches!(dtype, DType::F32 | DType::F16),
            Role::Linear => true,
            Role::Vector => dtype == DType::F32,
        }
    }
}

/// One tensor the config requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: Role,
}

/// The tensors of a model with this config, in the order the converter writes them. The config
/// must have passed [`ModelConfig::validate`] (its caps keep every product here far from
/// overflow).
pub fn expected_tensors(cfg: &ModelConfig) -> Vec<Expected> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let mut list = List(Vec::new());
    list.add(
        "embeddings.word_embeddings.weight",
        &[v, h],
        Role::Embedding,
    );
    let p = cfg.max_position_embeddings;
    list.add(
        "embeddings.position_embeddings.weight",
        &[p, h],
        Role::Embedding,
    );
    let t = cfg.type_vocab_size;
    list.add(
        "embeddings.token_type_embeddings.weight",
        &[t, h],
        Role::Embedding,
    );
    list.layer_norm("embeddings.LayerNorm", h);
    for l in 0..cfg.num_layers {
        let p = format!("encoder.layer.{l}");
        for qkv in ["query", "key", "value"] {
            list.linear(&format!("{p}.attention.self.{qkv}"), h, h);
        }
        list.linear(&format!("{p}.attention.output.dense"), h, h);
        list.layer_norm(&format!("{p}.attention.output.LayerNorm"), h);
        list.linear(&format!("{p}.intermediate.dense"), i, h);
        list.linear(&format!("{p}.output.dense"), h, i);
        list.layer_norm(&format!("{p}.output.LayerNorm"), h);
    }
    if cfg.has_pooler {
        list.linear("pooler.dense", h, h);
    }
    match cfg.head {
        Head::None => {}
        Head::MaskedLm => {
            list.linear("cls.predictions.transform.dense", h, h);
            list.layer_norm("cls.predictions.transform.LayerNorm", h);
            if !cfg.tied_decoder {
                list.add("cls.predictions.decoder.weight", &[v, h], Role::Linear);
            }
            list.add("cls.predictions.bias", &[v], Role::Vector);
        }
        Head::SequenceClassification | Head::TokenClassification => {
            list.linear("classifier", cfg.labels.len(), h);
        }
        Head::QuestionAnswering => list.linear("qa_outputs", 2, h),
    }
    list.0
}

/// The optional tensors a file of format 1.2 may add: `{linear}.input_scale`, `[in_features]`
/// f32, beside the weight of any linear layer stored as int8 (the factors the int8 GEMM
/// multiplies its input by before quantising it; docs/FORMAT.md). Derived from
/// [`expected_tensors`]' linear weights.
pub fn input_scales(cfg: &ModelConfig) -> Vec<Expected> {
    expected_tensors(cfg)
        .into_iter()
        .filter(|e| e.role == Role::Linear)
        .filter_map(|e| {
            let prefix = e.name.strip_suffix(".weight")?;
            Some(Expected {
                name: format!("{prefix}.input_scale"),
                shape: vec![e.shape[1]],
                role: Role::Vector,
            })
        })
        .collect()
}

struct List(Vec<Expected>);

impl List {
    fn add(&mut self, name: &str, shape: &[usize], role: Role) {
        self.0.push(Expected {
            name: name.to_owned(),
            shape: shape.to_vec(),
            role,
        });
    }

    /// `nn.Linear(in_f, out_f)`: weight `[out_f, in_f]` and bias `[out_f]`.
    fn linear(&mut self, prefix: &str, out_f: usize, in_f: usize) {
        self.add(&format!("{prefix}.weight"), &[out_f, in_f], Role::Linear);
        self.add(&format!("{prefix}.bias"), &[out_f], Role::Vector);
    }

    fn layer_norm(&mut self, prefix: &str, n: usize) {
        self.add(&format!("{prefix}.weight"), &[n], Role::Vector);
        self.add(&format!("{prefix}.bias"), &[n], Role::Vector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, Family, Pooling, ProblemType};

    fn cfg(head: Head) -> ModelConfig {
        ModelConfig {
            family: Family::Bert,
            head,
            hidden_act: Activation::Gelu,
            has_pooler: true,
            pooling: Pooling::None,
            normalize: false,
            problem_type: ProblemType::Unspecified,
            tied_decoder: head == Head::MaskedLm,
            vocab_size: 10,
            hidden_size: 4,
            num_layers: 2,
            num_heads: 2,
            intermediate_size: 8,
            max_position_embeddings: 6,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            labels: if matches!(
                head,
                Head::SequenceClassification | Head::TokenClassification
            ) {
                vec!["a".into(), "b".into(), "c".into()]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn counts_match_hugging_face_bert() {
        // 5 embedding tensors, 16 per layer, 2 pooler, then the head.
        assert_eq!(expected_tensors(&cfg(Head::None)).len(), 5 + 2 * 16 + 2);
        assert_eq!(expected_tensors(&cfg(Head::MaskedLm)).len(), 5 + 32 + 2 + 5);
        assert_eq!(
            expected_tensors(&cfg(Head::QuestionAnswering)).len(),
            5 + 32 + 2 + 2
        );
        let cls = expected_tensors(&cfg(Head::SequenceClassification));
        let w = cls.iter().find(|e| e.name == "classifier.weight").unwrap();
        assert_eq!(w.shape, vec![3, 4]);
    }

    #[test]
    fn input_scales_follow_the_linear_layers() {
        let scales = input_scales(&cfg(Head::MaskedLm));
        // 6 linears per layer, the pooler and the transform; the tied decoder has no weight.
        assert_eq!(scales.len(), 2 * 6 + 1 + 1);
        let down = scales
            .iter()
            .find(|e| e.name == "encoder.layer.1.output.dense.input_scale")
            .unwrap();
        assert_eq!((down.shape.as_slice(), down.role), (&[8][..], Role::Vector));
    }

    #[test]
    fn roles_restrict_dtypes() {
        assert!(Role::Linear.allows(DType::I8));
        assert!(!Role::Embedding.allows(DType::I8));
        assert!(Role::Linear.allows(DType::Bf16));
        assert!(!Role::Embedding.allows(DType::Bf16));
        assert!(!Role::Vector.allows(DType::Bf16));
        assert!(!Role::Vector.allows(DType::F16));
    }
}
