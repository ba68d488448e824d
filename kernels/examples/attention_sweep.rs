//! Times the fused attention kernels of this process's path (`BERTH_ISA` to force another), f32
//! and bf16, on BERT's head shapes, 12 heads per call as a layer runs them, one thread: the
//! median of 60 calls and the GFLOP/s it makes (4 n^2 d per head: `Q K^T` and `P V`). A quick check for
//! changes to `attention.rs`; run the old and new binaries alternately, the machine is noisy.
//! On a CPU with AMX the bf16 slot runs on the tiles (`attention/amx.rs`).
//!
//!     cargo run --release -p berth-kernels --example attention_sweep

use std::time::Instant;

use berth_kernels::attention::{AttentionHead, AttentionScratch};
use berth_kernels::gemm::MatMut;

fn main() {
    let kernels = match berth_kernels::kernels() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("path {} (bf16: {})", kernels.isa, kernels.bf16);
    let slots = [("f32", kernels.attention), ("bf16", kernels.attention_bf16)];
    // (tokens, head size): MiniLM and BERT-base at 128 tokens, BERT-base at 512, and short
    // sequences (where the AMX tiles, run at every length by default, might not pay: compare
    // with BERTH_ISA=avx512).
    for (n, d) in [
        (128usize, 32usize),
        (128, 64),
        (512, 64),
        (8, 64),
        (16, 64),
        (32, 64),
        (64, 64),
    ] {
        for (name, attention) in slots {
            sweep(name, attention, n, d);
        }
    }
}

fn sweep(name: &str, attention: fn(AttentionHead<'_>, &mut AttentionScratch), n: usize, d: usize) {
    {
        let heads = 12;
        // Q, K and V of every head side by side in one row per token, as the layer holds them.
        let ld = 3 * heads * d;
        let qkv: Vec<f32> = (0..n * ld)
            .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut out = vec![0.0f32; n * d];
        let mut scratch = AttentionScratch::default();
        let mut times = Vec::new();
        for _ in 0..60 {
            let t = Instant::now();
            for h in 0..heads {
                let head = |part: usize| &qkv[(part * heads + h) * d..];
                attention(
                    AttentionHead {
                        n,
                        d,
                        q: head(0),
                        ldq: ld,
                        k: head(1),
                        ldk: ld,
                        v: head(2),
                        ldv: ld,
                        scale: 1.0 / (d as f32).sqrt(),
                        out: MatMut::new(&mut out, n, d, d),
                    },
                    &mut scratch,
                );
            }
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let flop = 4.0 * (n * n * d * heads) as f64;
        println!(
            "{name:>4} n={n:>4} d={d:>3}: {:>9.1} us per {heads} heads, {:>6.1} GFLOP/s",
            median * 1e6,
            flop / median / 1e9
        );
    }
}
