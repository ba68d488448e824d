//! `berth::Model::embed` on all-MiniLM-L6-v2 against sentence-transformers' `encode` on the 48
//! reference sentences (text in, embeddings out: tokenizer, fast path, pooling and
//! normalisation together): min cosine >= 0.99999 at f32, >= 0.998 at int8. One `Model` shared
//! by 8 threads gives, call after call, the bits one thread gives. Options out of range are
//! typed errors.

mod support;

use std::sync::Arc;

use berth::{Model, ModelOptions};
use berth_tools::convert::OutDtype;
use support::{cosine, read, reference};

fn sentences() -> Vec<String> {
    let text = std::fs::read_to_string(reference().join("minilm/sentences.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn min_cosine(dtype: OutDtype, options: ModelOptions) -> f64 {
    let (_dir, path) = support::convert_minilm(dtype);
    let model = Model::load_with(&path, options).unwrap();
    let texts = sentences();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = model.embed(&refs).unwrap();
    let want = read(&reference().join("minilm/embeddings.safetensors"));
    let want = &want["embeddings"];
    let dim = want.shape[1];
    assert_eq!((got.len(), got.dim()), (texts.len(), dim));
    let mut worst = f64::INFINITY;
    // sentence-transformers cuts at max_seq_length (256 for MiniLM) too: the long sentences
    // are cut on both sides, at the same token.
    let lengths = &read(&reference().join("minilm/tokens.safetensors"))["lengths"].i64;
    for (i, e) in got.iter().enumerate() {
        let at_max = lengths[i] as usize == model.max_seq_len();
        assert!(
            !got.truncated(i) || at_max,
            "sentence {i} cut, but not by the reference"
        );
        let c = cosine(e, &want.f32[i * dim..(i + 1) * dim]);
        worst = if c.is_nan() {
            f64::NEG_INFINITY
        } else {
            worst.min(c)
        };
    }
    println!("{dtype:?}: min cosine {worst:.7}");
    worst
}

#[test]
fn f32_embeddings_match_sentence_transformers() {
    let c = min_cosine(OutDtype::F32, ModelOptions::default());
    assert!(c >= 0.99999, "{c}");
}

#[test]
fn int8_embeddings_match_sentence_transformers() {
    let c = min_cosine(OutDtype::Int8, ModelOptions::default().threads(2));
    assert!(c >= 0.998, "{c}");
}

/// A checkpoint without sentence-transformers' files: the file configures no pooling, and
/// `embed` falls back to the mean of the real tokens (unnormalised, which the cosine does not
/// see), which is what sentence-transformers' mean pooling computes. Compared on the sentences
/// the reference did not cut at its 256 tokens, and that fit this file's own maximum (from
/// tokenizer.json, without sentence_bert_config.json).
#[test]
fn a_file_without_pooling_embeds_the_token_mean() {
    let src = tempfile::tempdir().unwrap();
    support::copy_dir(&support::minilm_dir(), src.path());
    for f in ["modules.json", "sentence_bert_config.json"] {
        std::fs::remove_file(src.path().join(f)).unwrap();
    }
    std::fs::remove_dir_all(src.path().join("1_Pooling")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("plain.berth");
    let opts = berth_tools::convert::Options::new(OutDtype::F32);
    berth_tools::convert::convert_to_file(src.path(), &path, &opts).unwrap();
    let model = Model::load_with(&path, ModelOptions::default().threads(1)).unwrap();
    assert_eq!(model.fast().config().pooling, berth::config::Pooling::None);
    let texts = sentences();
    let lengths = &read(&reference().join("minilm/tokens.safetensors"))["lengths"].i64;
    let fit: Vec<usize> = (0..texts.len())
        .filter(|&i| lengths[i] < 256 && lengths[i] as usize <= model.max_seq_len())
        .collect();
    assert!(fit.len() > 40, "{} of {} fit", fit.len(), texts.len());
    let refs: Vec<&str> = fit.iter().map(|&i| texts[i].as_str()).collect();
    let got = model.embed(&refs).unwrap();
    let want = read(&reference().join("minilm/embeddings.safetensors"));
    let want = &want["embeddings"];
    let dim = want.shape[1];
    for (e, &i) in got.iter().zip(&fit) {
        let c = cosine(e, &want.f32[i * dim..(i + 1) * dim]);
        assert!(c >= 0.99999, "sentence {i}: {c}");
    }
}

#[test]
fn one_model_serves_many_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
    let (_dir, path) = support::convert_minilm(OutDtype::Int8);
    let model = Arc::new(Model::load_with(&path, ModelOptions::default().threads(1)).unwrap());
    let texts = sentences();
    // Each thread embeds its own rotation of batches of 1 to 4 sentences.
    let batches: Vec<Vec<&str>> = (0..texts.len())
        .map(|i| {
            (0..1 + i % 4)
                .map(|j| texts[(i + j * 7) % texts.len()].as_str())
                .collect()
        })
        .collect();
    let want: Vec<Vec<f32>> = batches
        .iter()
        .map(|b| model.embed(b).unwrap().as_slice().to_vec())
        .collect();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (model, batches, want) = (&model, &batches, &want);
            scope.spawn(move || {
                for round in 0..20 {
                    let i = (t * 5 + round * 3) % batches.len();
                    let got = model.embed(&batches[i]).unwrap();
                    let same = got
                        .as_slice()
                        .iter()
                        .zip(&want[i])
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same && got.as_slice().len() == want[i].len(),
                        "thread {t} batch {i}"
                    );
                }
            });
        }
    });
}

#[test]
fn options_and_edges() {
    let (_dir, path) = support::convert_minilm(OutDtype::F32);
    let model = Model::load_with(&path, ModelOptions::default().threads(1)).unwrap();
    // Debug shows the model, not the pooled working memory.
    model.embed(&["warm the pool"]).unwrap();
    let debug = format!("{model:?}");
    assert!(debug.starts_with("Model") && debug.len() < 4000, "{debug}");
    // No texts: no embeddings.
    let none = model.embed(&[]).unwrap();
    assert!(none.is_empty() && none.get(0).is_none());
    assert_eq!(none.dim(), 384);
    // A long text is cut to max_seq_len and flagged.
    let long = "word ".repeat(600);
    let e = model.embed(&[long.as_str(), "short"]).unwrap();
    assert!(e.truncated(0) && !e.truncated(1));
    // Out-of-range options are typed errors.
    for bad in [
        ModelOptions::default().threads(0),
        ModelOptions::default().max_seq_len(1),
        ModelOptions::default().max_seq_len(100_000),
    ] {
        let err = Model::load_with(&path, bad).unwrap_err();
        assert!(matches!(err, berth::Error::BadOption { .. }), "{err}");
    }
    let short = Model::load_with(&path, ModelOptions::default().max_seq_len(8)).unwrap();
    assert_eq!(short.max_seq_len(), 8);
    assert!(short
        .embed(&["one two three four five six seven"])
        .unwrap()
        .truncated(0));
}
