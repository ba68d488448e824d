//! A `FastModel` on a pool of 4 threads, whose calls each keep the other 3 awake until they
//! return (`fast::awake`), called from 6 threads at once, 40 calls each, batches of several
//! sizes, int8 and f32 weights: every call returns the bits one thread gets (a model's results do
//! not depend on its threads), and every call returns (no helper waits under work that its call,
//! or another call it waits for, needs).

mod common;

use berth::config::{Activation, Head, ModelConfig};
use berth::fast::{FastModel, Workspace};
use berth::format::{encode, BerthFile, DType};
use berth::reference::{Inputs, Outputs};

const CALLERS: usize = 6;
const CALLS: usize = 40;

/// Linear weights in `dtype`, in panels, with input scales for int8.
fn file(cfg: &ModelConfig, dtype: DType) -> BerthFile {
    let tensors = common::panel_tensors(cfg, dtype, 11);
    BerthFile::from_bytes(&encode(cfg, None, &tensors).unwrap()).unwrap()
}

/// Input `i`: 1 to 3 sequences of up to 4 to 40 tokens, the later ones shorter.
fn input(cfg: &ModelConfig, i: usize) -> (usize, usize, Vec<i64>, Vec<i64>) {
    let (batch, seq) = (1 + i % 3, 4 + 12 * (i % 4));
    let ids = (0..batch * seq)
        .map(|j| ((j * 7 + i) % cfg.vocab_size) as i64)
        .collect();
    let mask = (0..batch * seq)
        .map(|j| i64::from(j % seq < seq - j / seq))
        .collect();
    (batch, seq, ids, mask)
}

fn run(model: &FastModel<'_>, cfg: &ModelConfig, i: usize, ws: &mut Workspace) -> Vec<u32> {
    let (batch, seq, ids, mask) = input(cfg, i);
    let x = Inputs {
        batch,
        seq,
        input_ids: &ids,
        attention_mask: Some(&mask),
        token_type_ids: None,
    };
    let mut out = Outputs::default();
    model.forward_into(&x, ws, &mut out).unwrap();
    out.last_hidden_state
        .data
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn callers_sharing_a_pool_of_four_get_one_threads_bits() {
    let cfg = common::small_config(Head::None, Activation::Gelu);
    for dtype in [DType::I8, DType::F32] {
        let file = file(&cfg, dtype);
        let one = FastModel::with_threads(&file, 1).unwrap();
        let mut ws = Workspace::default();
        let want: Vec<Vec<u32>> = (0..12).map(|i| run(&one, &cfg, i, &mut ws)).collect();
        let pool = FastModel::with_threads(&file, 4).unwrap();
        std::thread::scope(|s| {
            for t in 0..CALLERS {
                let (pool, cfg, want) = (&pool, &cfg, &want);
                s.spawn(move || {
                    let mut ws = Workspace::default();
                    for c in 0..CALLS {
                        let i = (c + 5 * t) % want.len();
                        assert!(
                            run(pool, cfg, i, &mut ws) == want[i],
                            "{} caller {t} call {c}: input {i} differs from 1 thread",
                            dtype.name()
                        );
                    }
                });
            }
        });
    }
}
