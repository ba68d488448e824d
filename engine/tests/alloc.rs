//! After warm-up, `FastModel::forward_into` allocates nothing: the encoder, attention, the
//! GEMMs' scratch, pooling, the heads and the outputs all live in the reused `Workspace` and
//! `Outputs`. A counting global allocator proves it, on every thread (rayon's workers
//! included). On more than one thread, each call hands the pass to the pool once, through
//! rayon's global job queue, which takes a new 63-slot block (and frees the old one) every 63
//! hand-overs: at most one allocation per 63 calls, in constant memory, and that is all; this binary holds this one test, so that no other test's allocations count, and
//! the test lets the previous model's threads finish exiting (and the new pool's finish
//! starting: both allocate on their own) before it counts.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth::config::{Activation, Head, ModelConfig};
use berth::fast::{FastModel, Workspace};
use berth::format::{encode, BerthFile, DType};
use berth::reference::{Inputs, Outputs};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every operation to the system allocator unchanged; it only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn config(head: Head) -> ModelConfig {
    common::small_config(head, Activation::Gelu)
}

/// Linear weights in `dtype`, in panels, with input scales for int8.
fn file(cfg: &ModelConfig, dtype: DType) -> BerthFile {
    let tensors = common::panel_tensors(cfg, dtype, 3);
    BerthFile::from_bytes(&encode(cfg, None, &tensors).unwrap()).unwrap()
}

/// `batch` sequences padded to `seq`, sequence `b` with `seq - b` real tokens.
fn batch(cfg: &ModelConfig, batch: usize, seq: usize) -> (Vec<i64>, Vec<i64>) {
    let ids = (0..batch * seq)
        .map(|i| (i * 7 % cfg.vocab_size) as i64)
        .collect();
    let mask = (0..batch * seq)
        .map(|i| i64::from(i % seq < seq - (i / seq).min(seq - 1)))
        .collect();
    (ids, mask)
}

#[test]
fn forward_into_allocates_nothing_after_warm_up() {
    for head in Head::ALL.iter().copied() {
        for dtype in [DType::F32, DType::F16, DType::Bf16, DType::I8] {
            for threads in [1, 2] {
                let cfg = config(head);
                let file = file(&cfg, dtype);
                let model = FastModel::with_threads(&file, threads).unwrap();
                let mut ws = Workspace::default();
                let mut out = Outputs::default();
                let shapes = [(3, 40), (1, 40), (2, 17), (3, 5), (1, 1)];
                let inputs: Vec<_> = shapes.iter().map(|&(b, s)| batch(&cfg, b, s)).collect();
                let run =
                    |ws: &mut Workspace, out: &mut Outputs, (b, s): (usize, usize), i: usize| {
                        let (ids, mask) = &inputs[i];
                        let x = Inputs {
                            batch: b,
                            seq: s,
                            input_ids: ids,
                            attention_mask: Some(mask),
                            token_type_ids: None,
                        };
                        model.forward_into(&x, ws, out).unwrap();
                    };
                // Warm-up: the largest batch (3 x 40) sizes every buffer.
                run(&mut ws, &mut out, shapes[0], 0);
                run(&mut ws, &mut out, shapes[0], 0);
                std::thread::sleep(std::time::Duration::from_millis(100));
                let before = ALLOCS.load(Ordering::Relaxed);
                for _ in 0..8 {
                    for (i, &shape) in shapes.iter().enumerate() {
                        run(&mut ws, &mut out, shape, i);
                    }
                }
                let n = ALLOCS.load(Ordering::Relaxed) - before;
                let calls = 8 * shapes.len();
                let allowed = if threads == 1 { 0 } else { calls / 63 + 1 };
                assert!(
                    n <= allowed,
                    "{head:?} {} {threads} threads: {n} allocations in {calls} calls",
                    dtype.name()
                );
                assert!(out.last_hidden_state.data.iter().all(|v| v.is_finite()));
            }
        }
    }
}
