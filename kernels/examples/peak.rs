//! Prints this machine's register-only FMA peak per core (and with every core busy), the
//! figure GEMM results are quoted against. `cargo run --release -p berth-kernels --example peak`

use std::time::Instant;

fn measure(f: fn(u64) -> Option<u64>, threads: usize) -> Option<f64> {
    const ITERS: u64 = 20_000_000;
    f(1000)?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| f(ITERS));
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    Some(f(ITERS)? as f64 * threads as f64 / best / 1e9)
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, f) in [
        (
            "avx512 f32 fma",
            berth_kernels::peak::fma_f32_avx512 as fn(u64) -> Option<u64>,
        ),
        ("avx2 f32 fma", berth_kernels::peak::fma_f32_avx2),
    ] {
        if let (Some(one), Some(all)) = (measure(f, 1), measure(f, cores)) {
            println!("{name}: {one:.1} GFLOP/s on 1 thread, {all:.1} GFLOP/s on {cores} ({:.1} per core)", all / cores as f64);
        }
    }
}
