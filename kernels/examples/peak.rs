//! Prints this machine's register-only peaks per core (and with every core busy): f32 FMA,
//! VNNI int8, AVX-512 BF16 and the AMX tiles, the figures GEMM results are quoted against.
//! `cargo run --release -p berth-kernels --example peak`

use std::time::Instant;

fn measure(f: fn(u64) -> Option<u64>, threads: usize, iters: u64) -> Option<f64> {
    f(1000)?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| f(iters));
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    Some(f(iters)? as f64 * threads as f64 / best / 1e9)
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    type Loop = fn(u64) -> Option<u64>;
    use berth_kernels::peak;
    // Iterations per loop: about 0.1 s each (an AMX iteration is 4 tile products, 64 cycles).
    let loops: [(&str, Loop, u64, &str); 6] = [
        (
            "avx512 f32 fma",
            peak::fma_f32_avx512,
            20_000_000,
            "GFLOP/s",
        ),
        ("avx2 f32 fma", peak::fma_f32_avx2, 20_000_000, "GFLOP/s"),
        (
            "avx512 vnni int8",
            peak::vnni_i8_avx512,
            20_000_000,
            "GOP/s",
        ),
        ("avx512 bf16", peak::dpbf16_avx512, 20_000_000, "GFLOP/s"),
        ("amx int8", peak::amx_i8, 5_000_000, "GOP/s"),
        ("amx bf16", peak::amx_bf16, 5_000_000, "GFLOP/s"),
    ];
    for (name, f, iters, unit) in loops {
        if let (Some(one), Some(all)) = (measure(f, 1, iters), measure(f, cores, iters)) {
            println!(
                "{name}: {one:.1} {unit} on 1 thread, {all:.1} {unit} on {cores} ({:.1} per core)",
                all / cores as f64
            );
        }
    }
}
