//! Writer to reader round trip over random configs, tokenizers and dtype mixes.

mod common;

use berth::config::{
    Activation, Family, Head, ModelConfig, Pooling, ProblemType, TokenizerConfig, TokenizerKind,
    Vocab,
};
use berth::format::{encode, BerthFile, DType, Layout, TensorData};
use berth::schema::{expected_tensors, Role};
use common::{tensor, tensor_in, Lcg};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Knobs {
    head: u8,
    heads: usize,
    head_dim: usize,
    layers: usize,
    vocab: usize,
    positions: usize,
    types: usize,
    intermediate: usize,
    labels: usize,
    act: u8,
    pooling: u8,
    flags: u8,
    eps: f64,
    tokenizer: Option<(Vec<String>, u8, usize)>,
    seed: u64,
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        (0u8..5, 1usize..4, 1usize..5, 1usize..3, 5usize..40),
        (
            1usize..12,
            1usize..3,
            1usize..20,
            1usize..5,
            0u8..3,
            0u8..5,
            any::<u8>(),
        ),
        (1e-14f64..1e-3, any::<u64>()),
        prop::option::of((
            prop::collection::vec("[a-z#\\[\\]]{1,6}|\\PC{1,4}", 5..40),
            any::<u8>(),
            1usize..100,
        )),
    )
        .prop_map(
            |(
                (head, heads, head_dim, layers, vocab),
                (positions, types, intermediate, labels, act, pooling, flags),
                (eps, seed),
                tokenizer,
            )| Knobs {
                head,
                heads,
                head_dim,
                layers,
                vocab,
                positions,
                types,
                intermediate,
                labels,
                act,
                pooling,
                flags,
                eps,
                tokenizer,
                seed,
            },
        )
}

fn build(k: &Knobs) -> (ModelConfig, Option<TokenizerConfig>) {
    let head = Head::ALL[k.head as usize];
    let has_labels = matches!(
        head,
        Head::SequenceClassification | Head::TokenClassification
    );
    let bit = |i: u8| k.flags & (1 << i) != 0;
    let tok_vocab = k.tokenizer.as_ref().map_or(0, |t| t.0.len());
    let cfg = ModelConfig {
        family: Family::Bert,
        head,
        hidden_act: Activation::ALL[k.act as usize],
        has_pooler: head == Head::SequenceClassification || bit(0),
        pooling: [
            Pooling::None,
            Pooling::Mean,
            Pooling::Cls,
            Pooling::Max,
            Pooling::MeanSqrtLen,
        ][k.pooling as usize],
        normalize: bit(1),
        problem_type: if head == Head::SequenceClassification {
            [
                ProblemType::Unspecified,
                ProblemType::SingleLabel,
                ProblemType::MultiLabel,
                ProblemType::Regression,
            ][(k.flags >> 4) as usize % 4]
        } else {
            ProblemType::Unspecified
        },
        tied_decoder: head == Head::MaskedLm && bit(2),
        vocab_size: k.vocab.max(tok_vocab),
        hidden_size: k.heads * k.head_dim,
        num_layers: k.layers,
        num_heads: k.heads,
        intermediate_size: k.intermediate,
        max_position_embeddings: k.positions,
        type_vocab_size: k.types,
        layer_norm_eps: k.eps,
        labels: if has_labels {
            (0..k.labels).map(|i| format!("label-{i}-é")).collect()
        } else {
            vec![]
        },
    };
    let tok = k.tokenizer.as_ref().map(|(tokens, f, chars)| {
        let n = tokens.len() as u32;
        let mut specials: Vec<u32> = (0..n)
            .filter(|i| (i * 7 + u32::from(*f)) % 5 == 0)
            .collect();
        specials.dedup();
        TokenizerConfig {
            kind: TokenizerKind::WordPiece,
            lowercase: f & 1 != 0,
            strip_accents: [None, Some(true), Some(false)][(*f >> 1) as usize % 3],
            handle_chinese_chars: f & 8 != 0,
            clean_text: f & 16 != 0,
            max_length: 1 + (*f as usize) % k.positions,
            max_input_chars_per_word: *chars,
            continuing_subword_prefix: "##".into(),
            unk_id: 0,
            cls_id: 1 % n,
            sep_id: 2 % n,
            pad_id: 3 % n,
            mask_id: 4 % n,
            vocab: Vocab::from_tokens(tokens).unwrap(),
            special_ids: specials,
        }
    });
    (cfg, tok)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn writer_and_reader_round_trip(k in knobs()) {
        let (cfg, tok) = build(&k);
        let mut rng = Lcg(k.seed);
        let tensors: Vec<_> = expected_tensors(&cfg)
            .iter()
            .map(|e| {
                let pick = (rng.next_f32().abs() * 8.0) as usize % 8;
                let (dtype, layout) = match e.role {
                    Role::Vector => (DType::F32, Layout::RowMajor),
                    Role::Embedding => ([DType::F32, DType::F16][pick % 2], Layout::RowMajor),
                    Role::Linear => (
                        [DType::F32, DType::F16, DType::I8, DType::Bf16][pick % 4],
                        [Layout::RowMajor, Layout::Panels][pick / 4],
                    ),
                };
                let mut twin = Lcg(rng.0);
                let t = tensor_in(&e.name, &e.shape, dtype, layout, &mut rng);
                // The same values row-major: what `to_f32_vec` must give back.
                let row_major = tensor(&e.name, &e.shape, dtype, &mut twin);
                (t, row_major)
            })
            .collect();
        let (tensors, row_major): (Vec<TensorData>, Vec<TensorData>) = tensors.into_iter().unzip();
        let bytes = encode(&cfg, tok.as_ref(), &tensors).unwrap();
        let file = BerthFile::from_bytes(&bytes).unwrap();
        file.verify().unwrap();
        prop_assert_eq!(file.config(), &cfg);
        prop_assert_eq!(file.tokenizer(), tok.as_ref());
        prop_assert_eq!(file.header().tensors.len(), tensors.len());
        for ((t, rm), view) in tensors.iter().zip(&row_major).zip(file.tensors()) {
            prop_assert_eq!(&view.info.name, &t.name);
            prop_assert_eq!(&view.info.shape, &t.shape);
            prop_assert_eq!(view.info.dtype, t.dtype);
            prop_assert_eq!(view.info.quant, t.quant);
            prop_assert_eq!(view.info.layout, t.layout);
            prop_assert_eq!(view.bytes(), &t.bytes[..]);
            prop_assert_eq!(view.scales().map(<[f32]>::to_vec), t.scales.clone());
            prop_assert_eq!(view.bytes().as_ptr() as usize % 64, 0);
            // Whatever the layout, the values read back row-major are the source's.
            let want: Vec<f32> = match rm.dtype {
                DType::F32 => rm.bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
                DType::F16 => rm.bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32()).collect(),
                DType::Bf16 => rm.bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32()).collect(),
                DType::I8 => {
                    let cols = rm.shape[1];
                    let scales = rm.scales.as_ref().unwrap();
                    rm.bytes.iter().enumerate().map(|(i, &b)| scales[i / cols] * f32::from(b as i8)).collect()
                }
            };
            prop_assert_eq!(view.to_f32_vec(), want);
            if t.layout == Layout::Panels {
                prop_assert!(view.gemm_weights().is_some());
            }
        }
        // Re-encoding what was read gives the same bytes.
        let again = encode(file.config(), file.tokenizer(), &tensors).unwrap();
        prop_assert_eq!(again, bytes);
    }
}
