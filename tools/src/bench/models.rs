//! The benchmark's default models: all-MiniLM-L6-v2 from the cached checkpoint, and a BERT-base
//! with random weights written once as a Hugging Face checkpoint (so that the peers script loads
//! the very same weights with transformers). Both are converted afresh on every run, so that a
//! benchmark never measures a file an older converter wrote.

use std::path::{Path, PathBuf};

use berth::config::{Activation, Family, Head, ModelConfig, Pooling, ProblemType};
use berth::schema::{expected_tensors, Role};
use safetensors::tensor::TensorView;
use serde_json::json;

use crate::convert::{convert_to_file, io, ConvertError, Options, OutDtype};

/// Bumped whenever the generated checkpoint changes, so that an old cached one is rewritten.
const GENERATOR: u64 = 1;

/// Where the benchmark keeps its files: `bench/` under the cache.
pub fn bench_dir() -> PathBuf {
    crate::cache::cache_root().join("bench")
}

/// BERT-base's shapes (transformers' `BertConfig` defaults), encoder only: no pooler, no head.
pub fn bert_base_config() -> ModelConfig {
    ModelConfig {
        family: Family::Bert,
        head: Head::None,
        hidden_act: Activation::Gelu,
        has_pooler: false,
        pooling: Pooling::None,
        normalize: false,
        problem_type: ProblemType::Unspecified,
        tied_decoder: false,
        vocab_size: 30522,
        hidden_size: 768,
        num_layers: 12,
        num_heads: 12,
        intermediate_size: 3072,
        max_position_embeddings: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        labels: Vec::new(),
    }
}

/// SplitMix64: a small, fixed, seedable generator (the weights need only be the same on every
/// machine, not good random numbers).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-a, a)`.
    fn uniform(&mut self, a: f32) -> f32 {
        let unit = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * a
    }
}

/// Writes a Hugging Face `BertModel` checkpoint of `config`'s shapes into `dir` with weights as
/// transformers initialises them (linear and embedding weights of standard deviation 0.02, here
/// uniform; biases 0; LayerNorm 1 and 0), plus the tokenizer files of `tokenizer_from` when
/// given (BERT-base and MiniLM share bert-base-uncased's vocabulary).
pub fn write_random_checkpoint(
    dir: &Path,
    config: &ModelConfig,
    tokenizer_from: Option<&Path>,
    seed: u64,
) -> Result<(), ConvertError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cfg = json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "layer_norm_eps": config.layer_norm_eps,
        "initializer_range": 0.02,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "pad_token_id": 0,
        "berth_bench_generator": GENERATOR,
        "berth_bench_seed": seed,
    });
    let cfg_path = dir.join("config.json");
    std::fs::write(&cfg_path, format!("{cfg:#}\n")).map_err(io(&cfg_path))?;

    let mut rng = SplitMix(seed);
    // Uniform on [-a, a) has standard deviation a / sqrt(3).
    let a = 0.02 * 3f32.sqrt();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for e in expected_tensors(config) {
        let n: usize = e.shape.iter().product();
        let value = |rng: &mut SplitMix| match e.role {
            Role::Embedding | Role::Linear => rng.uniform(a),
            Role::Vector if e.name.ends_with("LayerNorm.weight") => 1.0,
            Role::Vector => 0.0,
        };
        let mut bytes = Vec::with_capacity(n * 4);
        for _ in 0..n {
            bytes.extend_from_slice(&value(&mut rng).to_le_bytes());
        }
        tensors.push((e.name, e.shape, bytes));
    }
    let st_path = dir.join("model.safetensors");
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>();
    views
        .and_then(|v| safetensors::serialize_to_file(v, None, &st_path))
        .map_err(|e| ConvertError::Safetensors {
            path: st_path.clone(),
            message: e.to_string(),
        })?;
    if let Some(src) = tokenizer_from {
        for name in [
            "vocab.txt",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ] {
            if src.join(name).exists() {
                std::fs::copy(src.join(name), dir.join(name)).map_err(io(&dir.join(name)))?;
            }
        }
    }
    Ok(())
}

/// Whether `dir` holds a checkpoint this generator wrote.
fn is_current(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    v["berth_bench_generator"].as_u64() == Some(GENERATOR) && dir.join("model.safetensors").exists()
}

/// The random BERT-base checkpoint directory, written on first use.
pub fn bert_base_checkpoint() -> Result<PathBuf, ConvertError> {
    let dir = bench_dir().join("bert-base-random");
    if !is_current(&dir) {
        let minilm = crate::cache::fetched_minilm_dir().ok();
        write_random_checkpoint(&dir, &bert_base_config(), minilm.as_deref(), 2026)?;
    }
    Ok(dir)
}

/// Converts `checkpoint` at `dtype` into `bench/{name}-{dtype}.berth` and returns the path.
pub fn converted(checkpoint: &Path, name: &str, dtype: OutDtype) -> Result<PathBuf, ConvertError> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let out = dir.join(format!("{name}-{}.berth", dtype.name()));
    convert_to_file(
        checkpoint,
        &out,
        &Options {
            dtype,
            progress: false,
            smoothing: true,
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_checkpoint_converts_and_runs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ModelConfig {
            vocab_size: 300,
            hidden_size: 32,
            num_layers: 2,
            num_heads: 4,
            intermediate_size: 64,
            max_position_embeddings: 64,
            ..bert_base_config()
        };
        write_random_checkpoint(dir.path(), &cfg, None, 7).unwrap();
        assert!(is_current(dir.path()));
        let c = crate::convert::convert_dir(
            dir.path(),
            &Options {
                dtype: OutDtype::F32,
                progress: false,
                smoothing: true,
            },
        )
        .unwrap();
        assert_eq!(c.config, cfg);
        // transformers' initialisation: weights of standard deviation 0.02, LayerNorm 1 and 0.
        let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let floats = |name: &str| -> Vec<f32> {
            st.tensor(name)
                .unwrap()
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let w = floats("encoder.layer.0.intermediate.dense.weight");
        let sd = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
        assert!((sd - 0.02).abs() < 0.002, "{sd}");
        assert!(floats("encoder.layer.1.output.LayerNorm.weight")
            .iter()
            .all(|&v| v == 1.0));
        assert!(floats("encoder.layer.1.output.dense.bias")
            .iter()
            .all(|&v| v == 0.0));
        // The same seed writes the same weights.
        let again = tempfile::tempdir().unwrap();
        write_random_checkpoint(again.path(), &cfg, None, 7).unwrap();
        assert_eq!(
            std::fs::read(again.path().join("model.safetensors")).unwrap(),
            bytes
        );
    }
}
