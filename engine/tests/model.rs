//! `Model` on a file without a tokenizer: a typed error, not a panic (the MiniLM tests of
//! `Model::embed` are in tools/tests/model_embed.rs).

mod common;

use berth::config::{Activation, Head};
use berth::format::{encode, DType, Layout};
use berth::schema::expected_tensors;
use berth::{Model, ModelOptions};
use common::{tensor_scaled, Lcg};

#[test]
fn a_file_without_tokenizer_is_an_error() {
    let cfg = common::small_config(Head::None, Activation::Gelu);
    let mut rng = Lcg(9);
    let tensors: Vec<_> = expected_tensors(&cfg)
        .iter()
        .map(|e| {
            tensor_scaled(
                &e.name,
                &e.shape,
                DType::F32,
                Layout::RowMajor,
                0.2,
                &mut rng,
            )
        })
        .collect();
    let bytes = encode(&cfg, None, &tensors).unwrap();
    let err = Model::from_bytes(&bytes, ModelOptions::default()).unwrap_err();
    assert!(matches!(err, berth::Error::NoTokenizer), "{err}");
    // Not a .berth file at all: the reader's typed error.
    let err = Model::from_bytes(b"not a model", ModelOptions::default()).unwrap_err();
    assert!(matches!(err, berth::Error::Format(_)), "{err}");
}
