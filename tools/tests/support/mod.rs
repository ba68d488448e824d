//! Shared helpers for the tools' integration tests: fixture paths and safetensors reading.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

pub const TINY_TASKS: [&str; 5] = [
    "bert_model",
    "masked_lm",
    "sequence_classification",
    "token_classification",
    "question_answering",
];

/// `fixtures/reference` (a copy of the Hugging Face goldens; scripts/update-fixtures.sh).
pub fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/reference")
}

/// The all-MiniLM-L6-v2 checkpoint fetched by scripts/fetch-minilm.sh. Fails with
/// instructions when it is not there.
pub fn minilm_dir() -> PathBuf {
    berth_tools::cache::fetched_minilm_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// MiniLM converted at `dtype` into a temporary directory (kept alive by the returned guard).
pub fn convert_minilm(dtype: berth_tools::convert::OutDtype) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("minilm-{}.berth", dtype.name()));
    berth_tools::convert::convert_to_file(
        &minilm_dir(),
        &path,
        &berth_tools::convert::Options {
            dtype,
            progress: false,
            smoothing: true,
        },
    )
    .unwrap();
    (dir, path)
}

/// A tensor read from safetensors, widened to f64 for comparisons (ints stay exact).
#[derive(Clone, Debug)]
pub struct Arr {
    pub shape: Vec<usize>,
    pub f32: Vec<f32>,
    pub i64: Vec<i64>,
}

pub fn read(path: &Path) -> HashMap<String, Arr> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    from_bytes(&bytes)
}

pub fn from_bytes(bytes: &[u8]) -> HashMap<String, Arr> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.iter()
        .map(|(name, v)| {
            let b = v.data();
            let mut a = Arr {
                shape: v.shape().to_vec(),
                f32: vec![],
                i64: vec![],
            };
            match v.dtype() {
                Dtype::F32 => {
                    a.f32 = b
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect()
                }
                Dtype::I64 => {
                    a.i64 = b
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect()
                }
                Dtype::F64 => {
                    a.f32 = b
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                        .collect()
                }
                other => panic!("{name}: unexpected dtype {other:?}"),
            }
            (name.to_owned(), a)
        })
        .collect()
}

/// max |a - b|, NaN-safe (a NaN anywhere gives infinity).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (f64::from(*x) - f64::from(*y)).abs();
            if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f64::max)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Copies a checkpoint directory (files only, one level of subdirectories) into `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// `fixtures/pipelines`: the pipelines' outputs on the tiny task models, with the tokenizer
/// files and configs they were made with.
pub fn pipelines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pipelines")
}

/// A checkpoint of fixtures/pipelines/`task`'s config and tokenizer with the weights of
/// fixtures/reference/tiny/`weights` (and, when `weights` is another model, its config),
/// converted at `dtype` into `dir/<task>-<weights>.berth`.
pub fn tiny_task(
    task: &str,
    weights: &str,
    dtype: berth_tools::convert::OutDtype,
    dir: &Path,
) -> PathBuf {
    let ckpt = dir.join(format!("{task}-{weights}"));
    copy_dir(&pipelines().join(task), &ckpt);
    let src = reference().join("tiny").join(weights);
    std::fs::copy(
        src.join("model.safetensors"),
        ckpt.join("model.safetensors"),
    )
    .unwrap();
    if !task.starts_with(weights) {
        std::fs::copy(src.join("config.json"), ckpt.join("config.json")).unwrap();
    }
    let out = dir.join(format!("{task}-{weights}-{}.berth", dtype.name()));
    let opts = berth_tools::convert::Options {
        dtype,
        progress: false,
        smoothing: dtype == berth_tools::convert::OutDtype::Int8,
    };
    berth_tools::convert::convert_to_file(&ckpt, &out, &opts).unwrap();
    out
}

/// Text from pieces that exercise every stage of the tokenizer and the tasks: words, accents
/// (precomposed and combining), CJK, punctuation, odd spaces, controls, emoji, literal special
/// tokens, digits.
pub fn text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        "[a-zA-Z]{1,12}",
        "[a-zà-ÿ]{1,6}",
        "[a-z]{1,3}\u{301}[a-z]{0,3}",
        "[\u{4e00}-\u{4e20}]{1,3}",
        "[.,;:!?'\"()\\-]{1,3}",
        "[ \t\n\u{a0}\u{3000}]{1,2}",
        "[\u{200b}\u{feff}\u{0}\u{7f}]",
        Just("👍🏽".to_string()),
        Just("[MASK]".to_string()),
        Just("İstanbul".to_string()),
        "[0-9]{1,5}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}
