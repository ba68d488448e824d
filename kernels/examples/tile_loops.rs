//! The int8 AMX tile GEMM's loops alone (no packing of A, no epilogue) at BERT's shapes, with A
//! laid out as the GEMM packs it (`rows`: tiles of 16 rows K bytes apart), in tile order (`tiles`:
//! each tile 1 KiB contiguous) and held close (`cached`: A in L1), against the register-only
//! `tdpbusd` peak: what bounds the tile GEMM (docs/KERNELS.md, AMX tiles). Compare `rows` with
//! `gemm_sweep`'s `i8` rows for what A's packing and the epilogue cost. Needs AMX; prints a line
//! saying so without it.
//!
//!     cargo run --release -p berth-kernels --example tile_loops [-- --runs 5]

use berth_kernels::peak::{self, TileA};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 5usize;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--runs", Some(r)) => runs = r,
            _ => {
                eprintln!("usage: tile_loops [--runs N]");
                std::process::exit(2);
            }
        }
    }
    let Some(ops) = peak::amx_i8(2_000_000) else {
        println!("no AMX on this machine: the tile loops are not run");
        return;
    };
    let t = std::time::Instant::now();
    peak::amx_i8(2_000_000);
    let peak = ops as f64 / t.elapsed().as_secs_f64() / 1e9;
    println!("tdpbusd register-only peak: {peak:.0} GOP/s");
    println!("    M     K     N  layout     GOP/s  of peak");
    // (M, K, N): MiniLM's four GEMMs, BERT-base's four, at 128 tokens, and two at 32 and 512.
    let shapes = [
        (128, 384, 1152),
        (128, 384, 384),
        (128, 384, 1536),
        (128, 1536, 384),
        (128, 768, 2304),
        (128, 768, 768),
        (128, 768, 3072),
        (128, 3072, 768),
        (32, 768, 768),
        (512, 768, 768),
    ];
    for (m, k, n) in shapes {
        // About 20 ms a run at 1 TOP/s.
        let reps = (2e10 / (2 * m * n * k) as f64).ceil() as usize;
        for (name, layout) in [
            ("rows", TileA::Rows),
            ("tiles", TileA::Tiles),
            ("cached", TileA::Cached),
        ] {
            let best = (0..runs)
                .filter_map(|_| peak::amx_i8_loops(m, n, k, layout, reps))
                .fold(0.0f64, f64::max);
            println!(
                "{m:5} {k:5} {n:5}  {name:7} {best:8.0}  {:6.1}%",
                100.0 * best / peak
            );
        }
    }
}
