//! config.json and the sentence-transformers files to a [`ModelConfig`].

use std::path::Path;

use berth::config::{Activation, Family, Head, ModelConfig, Pooling, ProblemType};
use serde_json::Value;

use super::error::ConvertError;
use super::json::{absent, bool_field, read_json, str_field, usize_field};

/// What config.json and the sentence-transformers files say. `has_pooler` and `tied_decoder`
/// are settled later, from the checkpoint's tensors.
#[derive(Debug)]
pub struct ParsedConfig {
    pub config: ModelConfig,
    /// `tie_word_embeddings` (default true, as in transformers).
    pub tie_word_embeddings: bool,
    /// sentence-transformers' `max_seq_length`, if given.
    pub st_max_seq_length: Option<usize>,
    pub notes: Vec<String>,
}

fn unsupported(reason: impl Into<String>) -> ConvertError {
    ConvertError::Unsupported {
        reason: reason.into(),
    }
}

/// Reads `dir/config.json` and, when present, `modules.json` with its pooling and normalise
/// modules and `sentence_bert_config.json`.
pub fn read_config(dir: &Path) -> Result<ParsedConfig, ConvertError> {
    let path = dir.join("config.json");
    let cfg = read_json(&path)?.ok_or(ConvertError::MissingFile {
        path: path.clone(),
        what: "config.json",
    })?;
    if !cfg.is_object() {
        return Err(ConvertError::ConfigField {
            field: "(root)".into(),
            reason: "must be a JSON object".into(),
        });
    }
    let mut notes = Vec::new();
    if let Some(mt) = str_field(&cfg, "model_type") {
        if mt != "bert" {
            return Err(ConvertError::UnsupportedArchitecture {
                found: format!("model_type {mt}"),
            });
        }
    }
    let architecture = match cfg.get("architectures").and_then(Value::as_array) {
        Some(list) => match list.first().and_then(Value::as_str) {
            Some(a) => a.to_owned(),
            None => "BertModel".to_owned(),
        },
        None => "BertModel".to_owned(),
    };
    let head = match architecture.as_str() {
        "BertModel" => Head::None,
        "BertForMaskedLM" => Head::MaskedLm,
        "BertForSequenceClassification" => Head::SequenceClassification,
        "BertForTokenClassification" => Head::TokenClassification,
        "BertForQuestionAnswering" => Head::QuestionAnswering,
        other => {
            return Err(ConvertError::UnsupportedArchitecture {
                found: other.to_owned(),
            })
        }
    };
    let act = str_field(&cfg, "hidden_act").unwrap_or("gelu");
    let hidden_act = match act {
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        other => {
            return Err(ConvertError::UnsupportedActivation {
                found: other.to_owned(),
            })
        }
    };
    match str_field(&cfg, "position_embedding_type") {
        None | Some("absolute") => {}
        Some(other) => {
            return Err(unsupported(format!(
                "position_embedding_type {other:?} (only \"absolute\")"
            )))
        }
    }
    for flag in ["is_decoder", "add_cross_attention"] {
        if bool_field(&cfg, flag, false) != Some(false) {
            return Err(unsupported(format!("{flag} is set (berth runs encoders)")));
        }
    }
    let layer_norm_eps = match cfg.get("layer_norm_eps") {
        v if absent(v) => 1e-12,
        Some(v) => v.as_f64().ok_or_else(|| ConvertError::ConfigField {
            field: "layer_norm_eps".into(),
            reason: format!("must be a number, found {v}"),
        })?,
        None => 1e-12,
    };
    let labels = match head {
        Head::SequenceClassification | Head::TokenClassification => labels(&cfg)?,
        _ => Vec::new(),
    };
    let problem_type = if head == Head::SequenceClassification {
        match str_field(&cfg, "problem_type") {
            None => ProblemType::Unspecified,
            Some("single_label_classification") => ProblemType::SingleLabel,
            Some("multi_label_classification") => ProblemType::MultiLabel,
            Some("regression") => ProblemType::Regression,
            Some(other) => {
                return Err(ConvertError::ConfigField {
                    field: "problem_type".into(),
                    reason: format!("has unknown value {other:?}"),
                })
            }
        }
    } else {
        ProblemType::Unspecified
    };
    let tie_word_embeddings =
        bool_field(&cfg, "tie_word_embeddings", true).ok_or_else(|| ConvertError::ConfigField {
            field: "tie_word_embeddings".into(),
            reason: "must be a boolean".into(),
        })?;
    let (pooling, normalize) = sentence_transformers_pooling(dir, &mut notes)?;
    let st_max_seq_length = berth::tokenizer::hf::sentence_transformers_max_length(dir)?;
    let config = ModelConfig {
        family: Family::Bert,
        head,
        hidden_act,
        has_pooler: false,
        pooling,
        normalize,
        problem_type,
        tied_decoder: false,
        vocab_size: usize_field(&cfg, "vocab_size", None)?,
        hidden_size: usize_field(&cfg, "hidden_size", None)?,
        num_layers: usize_field(&cfg, "num_hidden_layers", None)?,
        num_heads: usize_field(&cfg, "num_attention_heads", None)?,
        intermediate_size: usize_field(&cfg, "intermediate_size", None)?,
        max_position_embeddings: usize_field(&cfg, "max_position_embeddings", Some(512))?,
        type_vocab_size: usize_field(&cfg, "type_vocab_size", Some(2))?,
        layer_norm_eps,
        labels,
    };
    Ok(ParsedConfig {
        config,
        tie_word_embeddings,
        st_max_seq_length,
        notes,
    })
}

/// `id2label` in id order; else `num_labels` generic labels; else transformers' default of 2.
fn labels(cfg: &Value) -> Result<Vec<String>, ConvertError> {
    let bad = |reason: String| ConvertError::ConfigField {
        field: "id2label".into(),
        reason,
    };
    if let Some(map) = cfg.get("id2label").and_then(Value::as_object) {
        let mut labels = vec![None; map.len()];
        for (k, v) in map {
            let id = k
                .parse::<usize>()
                .ok()
                .filter(|&i| i < map.len())
                .ok_or_else(|| bad(format!("key {k:?} is not an id in 0..{}", map.len())))?;
            let label = v
                .as_str()
                .ok_or_else(|| bad(format!("label of id {id} is not a string")))?;
            labels[id] = Some(label.to_owned());
        }
        // Keys are distinct and all below len, so every slot is filled.
        return Ok(labels.into_iter().flatten().collect());
    }
    let n = usize_field(cfg, "num_labels", Some(2))?;
    Ok((0..n).map(|i| format!("LABEL_{i}")).collect())
}

/// sentence-transformers' modules.json: the `Pooling` module's mode and whether a `Normalize`
/// module follows. Without modules.json the file has no sentence-embedding pooling.
fn sentence_transformers_pooling(
    dir: &Path,
    notes: &mut Vec<String>,
) -> Result<(Pooling, bool), ConvertError> {
    let path = dir.join("modules.json");
    let Some(modules) = read_json(&path)? else {
        return Ok((Pooling::None, false));
    };
    let bad = |path: &Path, reason: String| ConvertError::SentenceTransformers {
        path: path.to_owned(),
        reason,
    };
    let list = modules
        .as_array()
        .ok_or_else(|| bad(&path, "must be a JSON list of modules".into()))?;
    let (mut pooling, mut normalize) = (Pooling::None, false);
    for m in list {
        let ty = str_field(m, "type").unwrap_or("");
        let sub = str_field(m, "path").unwrap_or("");
        match ty.rsplit('.').next().unwrap_or("") {
            "Transformer" => {}
            "Normalize" => normalize = true,
            "Pooling" => {
                let pc_path = dir.join(sub).join("config.json");
                let pc = read_json(&pc_path)?.ok_or(ConvertError::MissingFile {
                    path: pc_path.clone(),
                    what: "the Pooling module's config.json",
                })?;
                pooling = pooling_mode(&pc).map_err(|r| bad(&pc_path, r))?;
            }
            _ => {
                return Err(bad(
                    &path,
                    format!("module type {ty:?} is not supported (berth runs Transformer, Pooling, Normalize)"),
                ))
            }
        }
    }
    notes.push(format!(
        "sentence-transformers: {} pooling{}",
        pooling.name(),
        if normalize { ", L2-normalised" } else { "" }
    ));
    Ok((pooling, normalize))
}

fn pooling_mode(pc: &Value) -> Result<Pooling, String> {
    let modes = [
        ("pooling_mode_cls_token", Some(Pooling::Cls)),
        ("pooling_mode_mean_tokens", Some(Pooling::Mean)),
        ("pooling_mode_max_tokens", Some(Pooling::Max)),
        (
            "pooling_mode_mean_sqrt_len_tokens",
            Some(Pooling::MeanSqrtLen),
        ),
        ("pooling_mode_weightedmean_tokens", None),
        ("pooling_mode_lasttoken", None),
    ];
    let on: Vec<_> = modes
        .iter()
        .filter(|(k, _)| pc.get(*k).and_then(Value::as_bool) == Some(true))
        .collect();
    match on.as_slice() {
        [(_, Some(p))] => Ok(*p),
        [(k, None)] => Err(format!("{k} is not supported")),
        [] => Err("no pooling mode is enabled".into()),
        _ => Err("several pooling modes at once (concatenated) are not supported".into()),
    }
}
