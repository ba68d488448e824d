//! The fast forward pass against the reference forward pass on the same file, for every head,
//! every weight type and layout, every activation, and every kernel table this CPU can run
//! (and under qemu, NEON's): real positions of padded batches (suffix padding and holes), every
//! output. Also: a batch gives bit for bit what its sequences give one at a time, and 3
//! threads give bit for bit what 1 gives.
//!
//! Tolerances (absolute, on outputs of magnitude up to ~10): f32 and f16 weights 1e-4 (issue
//! 5's bound; the fast path accumulates in f32 where the reference uses f64, observed ~1e-6);
//! int8 weights: the reference dequantises the weights but keeps activations in f32, while the
//! fast path also quantises each token's activations to 8 bits (256 steps per token, or per
//! group of K: each int8 case runs with the default groups, per token, and groups of 16 and 8),
//! so it is held to a relative bound instead: `INT8_REL` (8%) of the output's largest
//! magnitude, or of `last_hidden_state`'s where that is larger (`rel_scale`: every output is
//! computed from the hidden states and carries their absolute error, and one far smaller than
//! they are, like some random QA heads' logits of at most 0.2 against hidden states of 2, would
//! otherwise be held to a bound set by its seed: 11.8% of its own magnitude was seen); the
//! worst observed over every case here is 2.1% (these random 2-layer models; MiniLM's
//! sentence-embedding cosines are in tools/tests/fast_minilm.rs). bf16 compute
//! (`FastModel::use_bf16` on f32 and f16 files, which bf16 files equal bit for bit: weights and
//! activations rounded to bfloat16's 8-bit significand at every linear layer, and attention's
//! Q, K, V and softmax weights) is held to `BF16_REL` (6%) of the same scale; the worst observed here is 0.45% (2.6% of the small QA
//! logits' own magnitude, after two layers of rounding). `use_bf16_attention` on int8 and f32
//! files is held to the int8 and bf16 bounds.

mod common;

use berth::config::{Activation, Head, ModelConfig};
use berth::fast::{ActGrouping, FastModel, Workspace, DEFAULT_ACT_GROUPING};
use berth::format::{encode, BerthFile, DType, Layout, TensorData};
use berth::reference::{Inputs, Outputs, ReferenceModel};
use berth::schema::{expected_tensors, Role};
use berth_kernels::Kernels;
use common::{tensor_scaled, Lcg};

const TOL_FLOAT: f32 = 1e-4;
const INT8_REL: f32 = 0.08;
const BF16_REL: f32 = 0.06;

/// A small model with tile-sized dimensions (`common::small_config`): hidden 64 in 4 heads of
/// 16, intermediate 96 (not a multiple of the 32-channel panel), 2 layers, 40 positions,
/// vocabulary 50 (the tied decoder's N, not a multiple of 32 either).
fn config(head: Head, act: Activation) -> ModelConfig {
    common::small_config(head, act)
}

/// Every linear weight in `dtype` and `layout`; embeddings f16 when the weights are f16; int8
/// weights in panels come with input scales (format 1.2), row-major ones without.
fn tensors(cfg: &ModelConfig, dtype: DType, layout: Layout, seed: u64) -> Vec<TensorData> {
    let mut rng = Lcg(seed);
    let mut out = Vec::new();
    for e in expected_tensors(cfg) {
        let (dt, lay, scale) = match e.role {
            Role::Vector => (DType::F32, Layout::RowMajor, 1.0),
            Role::Embedding if dtype == DType::F16 => (DType::F16, Layout::RowMajor, 1.0),
            Role::Embedding => (DType::F32, Layout::RowMajor, 1.0),
            // Weights of about BERT's scale relative to their fan-in (std 0.12 at 64), so
            // that attention is not saturated and int8 error is what real models show.
            Role::Linear => (dtype, layout, 0.2),
        };
        out.push(tensor_scaled(&e.name, &e.shape, dt, lay, scale, &mut rng));
        if e.role == Role::Linear && dt == DType::I8 && lay == Layout::Panels {
            out.push(common::input_scale(&e, &mut rng));
        }
    }
    out
}

/// Three sequences of 40 positions: all real, suffix padding (23 real), and holes.
fn batch(cfg: &ModelConfig, seed: u64) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let seq = 40;
    let mut rng = Lcg(seed);
    let mut pick = |n: usize| ((rng.next_f32() + 1.0) * 0.5 * n as f32) as i64 % n as i64;
    let ids: Vec<i64> = (0..3 * seq).map(|_| pick(cfg.vocab_size)).collect();
    let types: Vec<i64> = (0..3 * seq).map(|_| pick(2)).collect();
    let mut mask = vec![1i64; 3 * seq];
    for p in 23..seq {
        mask[seq + p] = 0;
    }
    for p in [3, 4, 10, 17, 30, 39] {
        mask[2 * seq + p] = 0;
    }
    (ids, mask, types)
}

/// [`batch`]'s tensors (`[batch, seq]` row-major, `seq` = 40) as the `batch` sequences from
/// `first`.
fn sequences<'a>(
    (ids, mask, types): &'a (Vec<i64>, Vec<i64>, Vec<i64>),
    first: usize,
    batch: usize,
) -> Inputs<'a> {
    let rows = first * 40..(first + batch) * 40;
    Inputs {
        batch,
        seq: 40,
        input_ids: &ids[rows.clone()],
        attention_mask: Some(&mask[rows.clone()]),
        token_type_ids: Some(&types[rows]),
    }
}

/// The worst |fast - reference| over real positions of every output, and the largest
/// reference magnitude, per output.
fn compare(
    head: Head,
    fast: &Outputs,
    reference: &Outputs,
    mask: &[i64],
) -> Vec<(&'static str, f32, f32)> {
    let mut out = Vec::new();
    let f = fast.named();
    for (name, want) in reference.named() {
        let got = f
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("fast path lacks {name}"))
            .1;
        assert_eq!(got.shape, want.shape, "{name}");
        // Outputs with a value per position: compared where the mask is 1.
        let token_level = matches!(name, "last_hidden_state" | "start_logits" | "end_logits")
            || (name == "logits" && matches!(head, Head::MaskedLm | Head::TokenClassification));
        let width = if token_level {
            want.data.len() / mask.len()
        } else {
            0
        };
        let (mut worst, mut scale) = (0.0f32, 0.0f32);
        for (i, (g, w)) in got.data.iter().zip(&want.data).enumerate() {
            if token_level && mask[i / width] == 0 {
                continue;
            }
            assert!(g.is_finite(), "{name}[{i}] = {g}");
            worst = worst.max((g - w).abs());
            scale = scale.max(w.abs());
        }
        out.push((name, worst, scale));
    }
    out
}

/// The scale an output's relative bound (int8, bf16) applies to: its own largest magnitude, or
/// the hidden states' where that is larger (module docs). `results` are `compare`'s.
fn rel_scale(results: &[(&'static str, f32, f32)], scale: f32) -> f32 {
    let hidden = results
        .iter()
        .find(|(name, _, _)| *name == "last_hidden_state")
        .map_or(0.0, |r| r.2);
    scale.max(hidden)
}

fn tables() -> Vec<&'static Kernels> {
    berth_kernels::variants()
        .into_iter()
        .map(|k| &*Box::leak(Box::new(k)))
        .collect()
}

#[test]
fn fast_path_matches_the_reference() {
    let heads = Head::ALL;
    let kinds = [
        (DType::F32, Layout::Panels),
        (DType::F32, Layout::RowMajor),
        (DType::F16, Layout::Panels),
        (DType::I8, Layout::Panels),
        (DType::I8, Layout::RowMajor),
    ];
    // bf16 files are not among the kinds: they compute bit for bit what f32 files do with
    // `use_bf16` (`bf16_file_is_the_f32_file_in_bf16`), which is held to the reference here.
    let tables = tables();
    let mut worst_int8 = 0.0f32;
    let mut worst_bf16 = 0.0f32;
    for (hi, &head) in heads.iter().enumerate() {
        for &act in Activation::ALL {
            let cfg = config(head, act);
            for (ki, &(dtype, layout)) in kinds.iter().enumerate() {
                let seed = (hi * 100 + ki) as u64;
                let bytes = encode(&cfg, None, &tensors(&cfg, dtype, layout, seed)).unwrap();
                let file = BerthFile::from_bytes(&bytes).unwrap();
                file.verify().unwrap();
                let reference = ReferenceModel::new(&file).unwrap();
                let tensors3 = batch(&cfg, seed + 7);
                let inputs = sequences(&tensors3, 0, 3);
                let want = reference.forward(&inputs).unwrap();
                // int8: the default activation groups (one group of the hidden 64, groups of
                // 64 and 32 for the intermediate 96), per row, and groups of 16 and 8.
                // Float weights: as they are, and re-packed for bf16 compute.
                let modes: &[(ActGrouping, bool)] = if dtype == DType::I8 {
                    &[
                        (DEFAULT_ACT_GROUPING, false),
                        (ActGrouping::PER_ROW, false),
                        (
                            ActGrouping {
                                hidden: Some(16),
                                intermediate: Some(8),
                            },
                            false,
                        ),
                    ]
                } else {
                    &[(DEFAULT_ACT_GROUPING, false), (DEFAULT_ACT_GROUPING, true)]
                };
                for (&kernels, &(grouping, bf16)) in tables
                    .iter()
                    .flat_map(|k| modes.iter().map(move |g| (k, g)))
                {
                    let load = |threads| {
                        let mut m = FastModel::with_kernels(&file, kernels, threads).unwrap();
                        m.set_act_grouping(grouping).unwrap();
                        if bf16 {
                            m.use_bf16();
                        }
                        m
                    };
                    let fast = load(1);
                    let mut ws = Workspace::default();
                    let got = fast.forward(&inputs, &mut ws).unwrap();
                    // Any thread count gives the same bits.
                    let threaded = load(3);
                    let again = threaded
                        .forward(&inputs, &mut Workspace::default())
                        .unwrap();
                    for ((name, a), (_, b)) in got.named().iter().zip(again.named()) {
                        assert!(
                            a.data
                                .iter()
                                .zip(&b.data)
                                .all(|(x, y)| x.to_bits() == y.to_bits()),
                            "{head:?} {dtype:?} on {}: {name} differs with 3 threads",
                            kernels.isa
                        );
                    }
                    let results = compare(head, &got, &want, &tensors3.1);
                    for &(name, worst, own) in &results {
                        let scale = rel_scale(&results, own);
                        let ctx = format!(
                            "{head:?} {act:?} {dtype:?} {layout:?} {grouping:?} bf16={bf16} on {} ({}, {}): {name}",
                            kernels.isa, kernels.int8, kernels.bf16
                        );
                        if bf16 {
                            worst_bf16 = worst_bf16.max(worst / scale.max(1e-6));
                            assert!(
                                worst <= BF16_REL * scale,
                                "{ctx}: {worst} > {BF16_REL} x {scale}"
                            );
                        } else if dtype == DType::I8 {
                            worst_int8 = worst_int8.max(worst / scale.max(1e-6));
                            assert!(
                                worst <= INT8_REL * scale,
                                "{ctx}: {worst} > {INT8_REL} x {scale}"
                            );
                        } else {
                            assert!(worst <= TOL_FLOAT, "{ctx}: {worst}");
                        }
                    }
                    // Each sequence alone gives the same bits as in the batch.
                    for b in 0..3 {
                        let one = fast.forward(&sequences(&tensors3, b, 1), &mut ws).unwrap();
                        let h = cfg.hidden_size;
                        let batched = &got.last_hidden_state.data[b * 40 * h..(b + 1) * 40 * h];
                        assert!(
                            one.last_hidden_state
                                .data
                                .iter()
                                .zip(batched)
                                .all(|(x, y)| x.to_bits() == y.to_bits()),
                            "{head:?} {dtype:?} on {}: sequence {b} alone differs",
                            kernels.isa
                        );
                    }
                }
            }
        }
    }
    println!("worst int8 relative difference: {worst_int8:.4}, bf16: {worst_bf16:.4}");
}

/// An activation group size outside the kernels' range is a typed error that leaves the model
/// as it was.
#[test]
fn bad_act_grouping_is_an_error() {
    let cfg = config(Head::None, Activation::Gelu);
    let bytes = encode(&cfg, None, &tensors(&cfg, DType::I8, Layout::Panels, 3)).unwrap();
    let file = BerthFile::from_bytes(&bytes).unwrap();
    let mut fast = FastModel::with_threads(&file, 1).unwrap();
    assert_eq!(fast.act_grouping(), DEFAULT_ACT_GROUPING);
    for size in [0, 2, 6, 516, usize::MAX] {
        for grouping in [
            ActGrouping {
                hidden: Some(size),
                intermediate: None,
            },
            ActGrouping {
                hidden: Some(64),
                intermediate: Some(size),
            },
        ] {
            let err = fast.set_act_grouping(grouping).unwrap_err();
            assert!(
                matches!(err, berth::Error::BadOption { .. }),
                "{size}: {err}"
            );
            assert_eq!(fast.act_grouping(), DEFAULT_ACT_GROUPING);
        }
    }
    fast.set_act_grouping(ActGrouping::PER_ROW).unwrap();
    assert_eq!(fast.act_grouping(), ActGrouping::PER_ROW);
}

/// bf16 compute re-packs float layers only: an int8 file computes exactly what it did, and
/// says it is not in bf16; a float file says it is.
#[test]
fn bf16_leaves_int8_layers_alone() {
    let cfg = config(Head::None, Activation::Gelu);
    let tensors3 = batch(&cfg, 5);
    let inputs = sequences(&tensors3, 0, 3);
    for dtype in [DType::I8, DType::F32] {
        let bytes = encode(&cfg, None, &tensors(&cfg, dtype, Layout::Panels, 4)).unwrap();
        let file = BerthFile::from_bytes(&bytes).unwrap();
        let mut fast = FastModel::with_threads(&file, 1).unwrap();
        let before = fast.forward(&inputs, &mut Workspace::default()).unwrap();
        fast.use_bf16();
        assert_eq!(fast.is_bf16(), dtype != DType::I8);
        let after = fast.forward(&inputs, &mut Workspace::default()).unwrap();
        let same = before
            .last_hidden_state
            .data
            .iter()
            .zip(&after.last_hidden_state.data);
        let identical = same.clone().all(|(x, y)| x.to_bits() == y.to_bits());
        assert_eq!(identical, dtype == DType::I8, "{dtype:?}");
    }
}

/// `use_bf16_attention` changes attention only: the linear layers keep their type (`is_bf16`
/// stays false), the outputs move (attention's products are rounded) but stay within the
/// file's bound of the reference (int8's, or bf16's for float weights), on every kernel table;
/// and a bf16 model's attention is bf16 already.
#[test]
fn bf16_attention_leaves_the_linear_layers_alone() {
    let cfg = config(Head::QuestionAnswering, Activation::Gelu);
    let tensors3 = batch(&cfg, 11);
    let inputs = sequences(&tensors3, 0, 3);
    for dtype in [DType::I8, DType::F32] {
        let bytes = encode(&cfg, None, &tensors(&cfg, dtype, Layout::Panels, 12)).unwrap();
        let file = BerthFile::from_bytes(&bytes).unwrap();
        let want = ReferenceModel::new(&file)
            .unwrap()
            .forward(&inputs)
            .unwrap();
        for &kernels in &tables() {
            let mut fast = FastModel::with_kernels(&file, kernels, 1).unwrap();
            let before = fast.forward(&inputs, &mut Workspace::default()).unwrap();
            assert!(!fast.attention_is_bf16());
            fast.use_bf16_attention();
            assert!(fast.attention_is_bf16() && !fast.is_bf16());
            let after = fast.forward(&inputs, &mut Workspace::default()).unwrap();
            let moved = before
                .last_hidden_state
                .data
                .iter()
                .zip(&after.last_hidden_state.data)
                .any(|(x, y)| x.to_bits() != y.to_bits());
            assert!(
                moved,
                "{dtype:?} on {}: bf16 attention changed nothing",
                kernels.isa
            );
            let bound = if dtype == DType::I8 {
                INT8_REL
            } else {
                BF16_REL
            };
            let results = compare(cfg.head, &after, &want, &tensors3.1);
            for &(name, worst, own) in &results {
                let scale = rel_scale(&results, own);
                assert!(
                    worst <= bound * scale,
                    "{dtype:?} on {}: {name} {worst} > {bound} x {scale}",
                    kernels.isa
                );
            }
        }
    }
    let bytes = encode(&cfg, None, &tensors(&cfg, DType::F32, Layout::Panels, 12)).unwrap();
    let file = BerthFile::from_bytes(&bytes).unwrap();
    let mut fast = FastModel::with_threads(&file, 1).unwrap();
    fast.use_bf16();
    assert!(fast.attention_is_bf16());
}

/// A bf16 file (format 1.3) computes bit for bit what the f32 file of the same values computes
/// with `use_bf16`: the same rounded weights, read in place instead of re-packed at load, on
/// every head (the tied masked-LM decoder follows the file's linear layers into bf16) and every
/// kernel table; both layouts; `use_bf16` on it changes nothing.
#[test]
fn bf16_file_is_the_f32_file_in_bf16() {
    for (hi, &head) in Head::ALL.iter().enumerate() {
        let cfg = config(head, Activation::Gelu);
        let seed = 40 + hi as u64;
        let f32_bytes = encode(&cfg, None, &tensors(&cfg, DType::F32, Layout::Panels, seed));
        let f32_file = BerthFile::from_bytes(&f32_bytes.unwrap()).unwrap();
        let tensors3 = batch(&cfg, seed);
        let inputs = sequences(&tensors3, 0, 3);
        for layout in [Layout::Panels, Layout::RowMajor] {
            let bytes = encode(&cfg, None, &tensors(&cfg, DType::Bf16, layout, seed)).unwrap();
            let file = BerthFile::from_bytes(&bytes).unwrap();
            file.verify().unwrap();
            for &kernels in &tables() {
                let mut want = FastModel::with_kernels(&f32_file, kernels, 1).unwrap();
                want.use_bf16();
                let want = want.forward(&inputs, &mut Workspace::default()).unwrap();
                let mut fast = FastModel::with_kernels(&file, kernels, 1).unwrap();
                assert!(fast.is_bf16());
                for pass in 0..2 {
                    let got = fast.forward(&inputs, &mut Workspace::default()).unwrap();
                    for ((name, a), (_, b)) in got.named().iter().zip(want.named()) {
                        assert!(
                            a.data
                                .iter()
                                .zip(&b.data)
                                .all(|(x, y)| x.to_bits() == y.to_bits()),
                            "{head:?} {layout:?} on {} ({}), pass {pass}: {name} differs",
                            kernels.isa,
                            kernels.bf16
                        );
                    }
                    fast.use_bf16();
                }
            }
        }
    }
}

/// `weight_bytes` is every linear layer's packed weights as the GEMMs read them: f32 panels,
/// bf16 panels (from a bf16 file, or after `use_bf16`), int8 panels with their scales and
/// channel sums (Q, K and V fused into one copy count once).
#[test]
fn weight_bytes_counts_the_packed_linear_weights() {
    use berth_kernels::gemm;
    let cfg = config(Head::SequenceClassification, Activation::Gelu);
    let sum = |bytes: fn(usize, usize) -> usize| -> usize {
        expected_tensors(&cfg)
            .iter()
            .filter(|e| e.role == Role::Linear)
            .map(|e| bytes(e.shape[0], e.shape[1]))
            .sum()
    };
    let f32_bytes = sum(|n, k| 4 * gemm::packed_len(n, k));
    let bf16_bytes = sum(|n, k| 2 * gemm::packed_len_bf16(n, k));
    let i8_bytes = sum(|n, k| gemm::packed_len_i8(n, k) + 8 * n);
    for (dtype, want) in [
        (DType::F32, f32_bytes),
        (DType::Bf16, bf16_bytes),
        (DType::I8, i8_bytes),
    ] {
        let bytes = encode(&cfg, None, &tensors(&cfg, dtype, Layout::Panels, 9)).unwrap();
        let file = BerthFile::from_bytes(&bytes).unwrap();
        let mut fast = FastModel::with_threads(&file, 1).unwrap();
        assert_eq!(fast.weight_bytes(), want, "{dtype:?}");
        fast.use_bf16();
        let after = if dtype == DType::I8 { want } else { bf16_bytes };
        assert_eq!(fast.weight_bytes(), after, "{dtype:?} after use_bf16");
    }
}

/// Every length from 1 to the maximum runs and matches the reference (f32).
#[test]
fn every_sequence_length() {
    let cfg = config(Head::None, Activation::Gelu);
    let bytes = encode(&cfg, None, &tensors(&cfg, DType::F32, Layout::Panels, 3)).unwrap();
    let file = BerthFile::from_bytes(&bytes).unwrap();
    let reference = ReferenceModel::new(&file).unwrap();
    let fast = FastModel::new(&file).unwrap();
    let mut ws = Workspace::default();
    for len in 1..=cfg.max_position_embeddings {
        let ids: Vec<i64> = (0..len as i64).map(|i| (i * 7 + 3) % 50).collect();
        let inputs = Inputs {
            batch: 1,
            seq: len,
            input_ids: &ids,
            attention_mask: None,
            token_type_ids: None,
        };
        let want = reference.forward(&inputs).unwrap();
        let got = fast.forward(&inputs, &mut ws).unwrap();
        let mask = vec![1i64; len];
        for (name, worst, _) in compare(Head::None, &got, &want, &mask) {
            assert!(worst <= TOL_FLOAT, "len {len} {name}: {worst}");
        }
    }
}

/// The fast path refuses what the reference refuses, with the same errors, and a masked first
/// token where the model reads it.
#[test]
fn bad_inputs_are_errors() {
    let cfg = config(Head::SequenceClassification, Activation::Gelu);
    let bytes = encode(&cfg, None, &tensors(&cfg, DType::F32, Layout::Panels, 5)).unwrap();
    let file = BerthFile::from_bytes(&bytes).unwrap();
    let fast = FastModel::new(&file).unwrap();
    let mut ws = Workspace::default();
    let ids = [1i64, 2, 3];
    let run = |ids: &[i64], mask: Option<&[i64]>, ws: &mut Workspace| {
        fast.forward(
            &Inputs {
                batch: 1,
                seq: ids.len(),
                input_ids: ids,
                attention_mask: mask,
                token_type_ids: None,
            },
            ws,
        )
    };
    assert!(matches!(
        run(&[1, 99, 3], None, &mut ws),
        Err(berth::InputError::TokenIdOutOfRange { .. })
    ));
    assert!(matches!(
        run(&ids, Some(&[1, 2, 1]), &mut ws),
        Err(berth::InputError::BadMask { .. })
    ));
    assert!(matches!(
        run(&ids, Some(&[0, 1, 1]), &mut ws),
        Err(berth::InputError::FirstTokenMasked { batch: 0 })
    ));
    assert!(matches!(
        run(&[1; 41], None, &mut ws),
        Err(berth::InputError::SequenceTooLong { .. })
    ));
    assert!(run(&ids, Some(&[1, 0, 0]), &mut ws).is_ok());
}
