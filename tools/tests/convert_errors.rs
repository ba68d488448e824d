//! The converter's clear errors (and what it accepts): checkpoints derived from the tiny
//! reference models with one thing changed.

mod support;

use std::path::Path;

use berth::config::Head;
use berth_tools::convert::{convert_dir, ConvertError, Options, OutDtype};
use safetensors::{Dtype, SafeTensors};
use support::{copy_dir, reference};

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

const OPTS: Options = Options {
    dtype: OutDtype::F32,
    progress: false,
    smoothing: true,
};

fn tiny(task: &str) -> std::path::PathBuf {
    reference().join("tiny").join(task)
}

fn load(dir: &Path) -> Tensors {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(n, v)| {
            (
                n.to_owned(),
                v.dtype(),
                v.shape().to_vec(),
                v.data().to_vec(),
            )
        })
        .collect()
}

fn save(dir: &Path, tensors: &Tensors) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
}

/// A copy of a tiny checkpoint with its tensors and config.json edited.
fn variant(
    task: &str,
    edit_tensors: impl FnOnce(&mut Tensors),
    edit_config: impl FnOnce(&mut serde_json::Value),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&tiny(task), dir.path());
    let mut t = load(dir.path());
    edit_tensors(&mut t);
    save(dir.path(), &t);
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    edit_config(&mut cfg);
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    dir
}

fn err(dir: &Path) -> ConvertError {
    convert_dir(dir, &OPTS).expect_err("conversion should fail")
}

#[test]
fn missing_tensor() {
    let d = variant(
        "bert_model",
        |t| t.retain(|x| x.0 != "encoder.layer.1.output.dense.bias"),
        |_| {},
    );
    let e = err(d.path());
    assert!(
        matches!(&e, ConvertError::MissingTensor { name } if name == "encoder.layer.1.output.dense.bias"),
        "{e}"
    );
}

#[test]
fn unknown_tensor() {
    let d = variant(
        "bert_model",
        |t| {
            t.push((
                "encoder.layer.0.adapter.weight".into(),
                Dtype::F32,
                vec![2],
                vec![0; 8],
            ))
        },
        |_| {},
    );
    let e = err(d.path());
    assert!(
        matches!(&e, ConvertError::UnknownTensor { name, .. } if name == "encoder.layer.0.adapter.weight"),
        "{e}"
    );
}

#[test]
fn unsupported_architecture_and_activation() {
    let d = variant(
        "bert_model",
        |_| {},
        |c| c["architectures"] = serde_json::json!(["BertForPreTraining"]),
    );
    assert!(matches!(
        err(d.path()),
        ConvertError::UnsupportedArchitecture { .. }
    ));
    let d = variant(
        "bert_model",
        |_| {},
        |c| c["model_type"] = serde_json::json!("roberta"),
    );
    assert!(matches!(
        err(d.path()),
        ConvertError::UnsupportedArchitecture { .. }
    ));
    let d = variant(
        "bert_model",
        |_| {},
        |c| c["hidden_act"] = serde_json::json!("swish"),
    );
    let e = err(d.path());
    assert!(
        matches!(&e, ConvertError::UnsupportedActivation { found } if found == "swish"),
        "{e}"
    );
    let d = variant(
        "bert_model",
        |_| {},
        |c| c["position_embedding_type"] = serde_json::json!("relative_key"),
    );
    assert!(matches!(err(d.path()), ConvertError::Unsupported { .. }));
}

#[test]
fn shape_contradicting_config() {
    let d = variant(
        "bert_model",
        |_| {},
        |c| c["intermediate_size"] = serde_json::json!(96),
    );
    let e = err(d.path());
    assert!(
        matches!(&e, ConvertError::ShapeMismatch { expected, found, .. } if expected[0] == 96 && found[0] == 128),
        "{e}"
    );
    // num_labels in id2label contradicting the classifier.
    let d = variant(
        "sequence_classification",
        |_| {},
        |c| {
            c["id2label"] = serde_json::json!({"0": "a", "1": "b"});
        },
    );
    assert!(matches!(err(d.path()), ConvertError::ShapeMismatch { .. }));
    // A config berth cannot hold: heads not dividing hidden.
    let d = variant(
        "bert_model",
        |_| {},
        |c| c["num_attention_heads"] = serde_json::json!(5),
    );
    assert!(matches!(
        err(d.path()),
        ConvertError::Format(berth::FormatError::BadConfig { .. })
    ));
}

/// The tiny BertModel with element 10 of layer 0's key weight set to `value`.
fn with_key_weight(value: f32) -> tempfile::TempDir {
    variant(
        "bert_model",
        |t| {
            let w = t
                .iter_mut()
                .find(|x| x.0 == "encoder.layer.0.attention.self.key.weight")
                .unwrap();
            w.3[40..44].copy_from_slice(&value.to_le_bytes());
        },
        |_| {},
    )
}

#[test]
fn non_finite_weights_are_refused() {
    for bad in [f32::NAN, f32::INFINITY] {
        let d = with_key_weight(bad);
        let e = err(d.path());
        assert!(
            matches!(&e, ConvertError::NonFinite { index: 10, .. }),
            "{e}"
        );
    }
}

/// A finite weight that the output dtype cannot hold is an error naming the element: above
/// f16's 65504, and f32::MAX, which rounds to infinity in bf16 (f32 keeps both).
#[test]
fn weights_that_overflow_the_dtype_are_refused() {
    for (value, dtype, overflows) in [
        (1e5f32, OutDtype::F16, true),
        (1e5, OutDtype::Bf16, false),
        (f32::MAX, OutDtype::Bf16, true),
        (f32::MAX, OutDtype::F32, false),
    ] {
        let d = with_key_weight(value);
        let result = convert_dir(d.path(), &Options { dtype, ..OPTS });
        match result {
            Err(ConvertError::Overflow {
                name,
                dtype: d,
                index: 10,
                ..
            }) if overflows => {
                assert_eq!(name, "encoder.layer.0.attention.self.key.weight");
                assert_eq!(d, dtype.name());
            }
            Ok(_) if !overflows => {}
            other => panic!("{value} as {}: {other:?}", dtype.name()),
        }
    }
}

#[test]
fn missing_files_and_bad_json() {
    let d = tempfile::tempdir().unwrap();
    assert!(matches!(err(d.path()), ConvertError::MissingFile { .. }));
    std::fs::write(d.path().join("config.json"), "{not json").unwrap();
    assert!(matches!(
        err(d.path()),
        ConvertError::HfFile(berth::tokenizer::hf::HfError::Json { .. })
    ));
    let d = variant("bert_model", |_| {}, |_| {});
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    assert!(matches!(err(d.path()), ConvertError::MissingFile { .. }));
    std::fs::write(d.path().join("model.safetensors"), b"\x10\0\0\0\0\0\0\0{}").unwrap();
    assert!(matches!(err(d.path()), ConvertError::Safetensors { .. }));
}

/// transformers-style names with and without `bert.`, old `gamma`/`beta` LayerNorm names,
/// half-precision checkpoints, and buffers all convert to the same model.
#[test]
fn name_variants_and_source_dtypes_are_accepted() {
    let base = convert_dir(&tiny("question_answering"), &OPTS).unwrap();
    let d = variant(
        "question_answering",
        |t| {
            for x in t.iter_mut() {
                x.0 =
                    x.0.replace("LayerNorm.weight", "LayerNorm.gamma")
                        .replace("LayerNorm.bias", "LayerNorm.beta");
            }
            t.push((
                "bert.embeddings.position_ids".into(),
                Dtype::I64,
                vec![1, 128],
                vec![0; 1024],
            ));
        },
        |_| {},
    );
    let renamed = convert_dir(d.path(), &OPTS).unwrap();
    assert_eq!(renamed.tensors, base.tensors);

    // BertModel without prefix vs. the same weights with `bert.`.
    let plain = convert_dir(&tiny("bert_model"), &OPTS).unwrap();
    let d = variant(
        "bert_model",
        |t| t.iter_mut().for_each(|x| x.0 = format!("bert.{}", x.0)),
        |_| {},
    );
    assert_eq!(convert_dir(d.path(), &OPTS).unwrap().tensors, plain.tensors);

    // A bf16 checkpoint converts (values widened exactly from bf16).
    let d = variant(
        "bert_model",
        |t| {
            for x in t.iter_mut() {
                let v: Vec<u8> =
                    x.3.chunks_exact(4)
                        .flat_map(|c| {
                            half::bf16::from_f32(f32::from_le_bytes(c.try_into().unwrap()))
                                .to_le_bytes()
                        })
                        .collect();
                (x.1, x.3) = (Dtype::BF16, v);
            }
        },
        |_| {},
    );
    let c = convert_dir(d.path(), &OPTS).unwrap();
    assert_eq!(c.tensors.len(), plain.tensors.len());
}

/// Adds `cls.predictions.decoder.weight` as a copy of the word embeddings, with one bit
/// flipped if `differ`.
fn add_decoder(t: &mut Tensors, differ: bool) {
    let (_, dtype, shape, mut bytes) = t
        .iter()
        .find(|x| x.0 == "bert.embeddings.word_embeddings.weight")
        .unwrap()
        .clone();
    if differ {
        bytes[0] ^= 1;
    }
    t.push(("cls.predictions.decoder.weight".into(), dtype, shape, bytes));
}

/// A masked-LM checkpoint that stores the tied decoder must store the embeddings there; an
/// untied one keeps its own decoder.
#[test]
fn tied_and_untied_decoders() {
    let d = variant("masked_lm", |t| add_decoder(t, false), |_| {});
    let c = convert_dir(d.path(), &OPTS).unwrap();
    assert!(c.config.tied_decoder);
    let has_decoder = |c: &berth_tools::convert::Converted| {
        c.tensors
            .iter()
            .any(|t| t.name == "cls.predictions.decoder.weight")
    };
    assert!(!has_decoder(&c));

    let d = variant("masked_lm", |t| add_decoder(t, true), |_| {});
    assert!(matches!(err(d.path()), ConvertError::UntiedDecoder { .. }));

    let d = variant(
        "masked_lm",
        |t| add_decoder(t, true),
        |c| c["tie_word_embeddings"] = serde_json::json!(false),
    );
    let c = convert_dir(d.path(), &OPTS).unwrap();
    assert_eq!(c.config.head, Head::MaskedLm);
    assert!(!c.config.tied_decoder);
    assert!(has_decoder(&c));
}

/// A vocab.txt tokenizer, and another head's tensors, which are ignored with a note.
#[test]
fn vocab_txt_tokenizer_and_ignored_head() {
    let d = variant(
        "bert_model",
        |t| {
            t.push((
                "cls.seq_relationship.weight".into(),
                Dtype::F32,
                vec![2, 64],
                vec![0; 512],
            ))
        },
        |_| {},
    );
    let mut vocab = String::from("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for i in 5..512 {
        vocab.push_str(&format!("tok{i}\n"));
    }
    std::fs::write(d.path().join("vocab.txt"), vocab).unwrap();
    std::fs::write(
        d.path().join("tokenizer_config.json"),
        r#"{"do_lower_case": false, "model_max_length": 1000000000000000019884624838656}"#,
    )
    .unwrap();
    let c = convert_dir(d.path(), &OPTS).unwrap();
    let t = c.tokenizer.unwrap();
    assert_eq!(t.vocab.len(), 512);
    assert!(!t.lowercase);
    assert_eq!(
        t.max_length, 128,
        "a sentinel model_max_length falls back to max positions"
    );
    assert_eq!((t.cls_id, t.mask_id), (2, 4));
    assert!(c
        .report
        .notes
        .iter()
        .any(|n| n.contains("cls.seq_relationship.weight")));
}

/// The MiniLM tokenizer read from vocab.txt + tokenizer_config.json equals the one read from
/// tokenizer.json.
#[test]
fn minilm_vocab_txt_equals_tokenizer_json() {
    let from_json = convert_dir(&support::minilm_dir(), &OPTS)
        .unwrap()
        .tokenizer
        .unwrap();
    let d = tempfile::tempdir().unwrap();
    copy_dir(&support::minilm_dir(), d.path());
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    let from_txt = convert_dir(d.path(), &OPTS).unwrap().tokenizer.unwrap();
    assert_eq!(from_txt, from_json);
}
