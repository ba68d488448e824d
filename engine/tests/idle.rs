//! No thread keeps spinning once a call has returned (issue 5): after a few forward passes on
//! 3 threads, the process uses (almost) no CPU time while the caller sleeps. rayon's idle
//! workers spin for a few rounds looking for work and then block; this holds the pool to that.
//! The measure is this process's own CPU time (user + system, from `/proc/self/stat`, in clock
//! ticks of 10 ms), so other load on the machine does not change it; a worker that kept
//! spinning would add about the sleep's length per thread (500 ms each).

#![cfg(target_os = "linux")]

mod common;

use berth::config::{Activation, Head};
use berth::fast::{FastModel, Workspace};
use berth::format::{encode, BerthFile, DType, Layout};
use berth::reference::Inputs;
use berth::schema::{expected_tensors, Role};
use common::{tensor_scaled, Lcg};

/// This process's user + system CPU time, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 here (state is field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn threads_sleep_after_a_call() {
    let cfg = common::small_config(Head::None, Activation::Gelu);
    let mut rng = Lcg(5);
    let tensors: Vec<_> = expected_tensors(&cfg)
        .iter()
        .map(|e| {
            let dt = if e.role == Role::Linear {
                DType::F16
            } else {
                DType::F32
            };
            tensor_scaled(&e.name, &e.shape, dt, Layout::RowMajor, 0.2, &mut rng)
        })
        .collect();
    let file = BerthFile::from_bytes(&encode(&cfg, None, &tensors).unwrap()).unwrap();
    let model = FastModel::with_threads(&file, 3).unwrap();
    let ids: Vec<i64> = (0..2 * 40)
        .map(|i| (i * 7 % cfg.vocab_size) as i64)
        .collect();
    let inputs = Inputs {
        batch: 2,
        seq: 40,
        input_ids: &ids,
        attention_mask: None,
        token_type_ids: None,
    };
    let mut ws = Workspace::default();
    for _ in 0..20 {
        model.forward(&inputs, &mut ws).unwrap();
    }
    // Let the workers finish their search for more work and block.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = cpu_ticks();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let used = cpu_ticks() - before;
    // One spinning worker would use ~50 ticks; allow 5 (50 ms) for wake-ups and the timer's
    // granularity.
    assert!(used <= 5, "{used} ticks of CPU while idle");
}
