//! A quick sweep of the int8 and bf16 GEMMs over M at BERT's (K, N), one thread, on every
//! table of this CPU that has its own int8 or bf16 kernel (AMX tiles, AVX-512 VNNI, AVX-512
//! BF16, ...): the median time of each, its GOP/s and its ratio to the first table. This is
//! what the AMX row thresholds (`gemm::AMX_MIN_ROWS_*`) were read from; the criterion bench
//! (`cargo bench -p berth-benches --bench gemm`) is the thorough one.
//!
//!     cargo run --release -p berth-kernels --example gemm_sweep \
//!         [-- --ms 1,8,32 --min-ms 150 --dtypes i8,i8g64,i8g128,bf16 --kn 768x3072,3072x768 \
//!            --threads 1 --tile-order --rotate 128 --epilogue gelu --json out.json]
//!
//! With `BERTH_ISA` set, only that path's tables run (its kernel and its fallbacks). With
//! `BERTH_AMX_MIN_ROWS=1` the AMX table runs the tiles at every M. With `--tile-order` (one
//! thread, AMX) each AMX row is followed by the tiles with A packed in tile order
//! (`amx-tileord`: every tile's 1 KiB in one piece), which no table takes yet. With
//! `--threads T` above 1 each GEMM runs through `gemm_par` on a pool of T threads (how the
//! engine runs it), and GOP/s is the pool's. With `--rotate MIB`, copies of the weights (every
//! dtype's packing) that fill that many MiB take turns, one a run, so that the weights come from
//! beyond the caches smaller than that (past L2: from L3, as in a model's forward pass, which
//! reads each layer's once), while A and C stay in cache: what the criterion bench's
//! `gemm streamed` groups do at M = 8 and 32, here at any M and beside the other tables.
//! With `--epilogue gelu` or `--epilogue residual` each GEMM adds a bias and ends as the
//! engine's FFN up projection (GELU) or its attention-output and down projections (a residual
//! `m x n`, in cache) do; the default (`none`) times the product alone.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use berth_kernels::gemm::{
    act_group_sums, gemm_par, pack_weights_bf16, ActGroups, Epilogue, Gemm, GemmScratch, MatMut,
    PackedI8, PackedI8Buf, Weights,
};
use berth_kernels::{variants, Isa, Kernels};

const KN: [(usize, usize); 8] = [
    (384, 1152),
    (384, 384),
    (384, 1536),
    (1536, 384),
    (768, 2304),
    (768, 768),
    (768, 3072),
    (3072, 768),
];

/// Median seconds of `f` over at least 7 runs and `min_ms`, after one warm-up run.
fn median(min_ms: u64, mut f: impl FnMut()) -> f64 {
    f();
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < 7 || start.elapsed() < Duration::from_millis(min_ms) {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64());
        if t.len() >= 2000 {
            break;
        }
    }
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// How each timed GEMM ends (`--epilogue`).
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// The product alone.
    None,
    /// Bias, then GELU.
    Gelu,
    /// Bias, then a residual.
    Residual,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::None => "none",
            End::Gelu => "gelu",
            End::Residual => "residual",
        }
    }
}

/// The timed GEMM: `a` (m x k, dense) times `w` into `c` (m x n), ended as `end` says with
/// `bias` (n) and `residual` (m x n).
fn plain<'a>(
    (m, n, k): (usize, usize, usize),
    a: &'a [f32],
    w: Weights<'a>,
    c: &'a mut [f32],
    (end, bias, residual): (End, &'a [f32], &'a [f32]),
) -> Gemm<'a> {
    Gemm {
        k,
        a,
        lda: k,
        w,
        bias: (end != End::None).then_some(bias),
        epilogue: match end {
            End::None => Epilogue::None,
            End::Gelu => Epilogue::Gelu,
            End::Residual => Epilogue::Residual { r: residual, ld: n },
        },
        c: MatMut::new(c, m, n, n),
    }
}

/// Prints one GEMM's line (its median, GOP/s and ratio to the first table's median `base`)
/// and keeps its JSON record.
fn report(
    records: &mut Vec<String>,
    (wt, m, k, n, end): (&str, usize, usize, usize, End),
    kernel: &str,
    secs: f64,
    base: f64,
) {
    let gops = 2.0 * (m * n * k) as f64 / secs / 1e9;
    println!(
        "{wt:<6} {m:>3} {k:>5} {n:>5}  {kernel:<12} {:>10.1} {gops:>7.1} {:>6.2}",
        secs * 1e6,
        secs / base
    );
    records.push(format!(
        "{{\"dtype\":\"{wt}\",\"m\":{m},\"k\":{k},\"n\":{n},\"epilogue\":\"{}\",\"kernel\":\"{kernel}\",\"median_us\":{:.3},\"gops\":{gops:.2}}}",
        end.name(),
        secs * 1e6
    ));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let ms: Vec<usize> = opt("--ms")
        .unwrap_or_else(|| "1,2,4,8,16,32,64,128,512".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let min_ms: u64 = opt("--min-ms").and_then(|v| v.parse().ok()).unwrap_or(150);
    let kn: Vec<(usize, usize)> = match opt("--kn") {
        Some(list) => list
            .split(',')
            .filter_map(|s| s.split_once('x'))
            .filter_map(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)))
            .collect(),
        None => KN.to_vec(),
    };
    let dtypes = opt("--dtypes").unwrap_or_else(|| "i8,i8g64,i8g128,bf16".into());
    let threads: usize = opt("--threads").and_then(|v| v.parse().ok()).unwrap_or(1);
    // With AMX: also the tiles with A packed in tile order (`gemm_tiles_in_tile_order`).
    let tile_order = args.iter().any(|a| a == "--tile-order");
    // MiB of weight copies that take turns (`--rotate`), or 0 for one set.
    let rotate: usize = opt("--rotate").and_then(|v| v.parse().ok()).unwrap_or(0);
    let epilogue = opt("--epilogue").unwrap_or_else(|| "none".into());
    let ends = [End::None, End::Gelu, End::Residual];
    let Some(end) = ends.into_iter().find(|e| e.name() == epilogue) else {
        eprintln!("--epilogue {epilogue}: expected none, gelu or residual");
        std::process::exit(2);
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = tile_order;
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("cannot start {threads} threads: {e}");
            std::process::exit(1);
        }
    };
    // One table per distinct int8 kernel and per distinct bf16 kernel, best first, of the path
    // BERTH_ISA names if it is set.
    let only = match std::env::var_os("BERTH_ISA") {
        Some(_) => match berth_kernels::kernels() {
            Ok(k) => Some(k.isa),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        },
        None => None,
    };
    let tables: Vec<Kernels> = variants()
        .into_iter()
        .filter(|t| t.isa != Isa::Scalar && only.is_none_or(|isa| t.isa == isa))
        .collect();
    let mut int8: Vec<Kernels> = Vec::new();
    let mut bf16: Vec<Kernels> = Vec::new();
    for t in &tables {
        if !int8.iter().any(|o| o.int8 == t.int8) {
            int8.push(*t);
        }
        if !bf16.iter().any(|o| o.bf16 == t.bf16) {
            bf16.push(*t);
        }
    }
    int8.truncate(2);
    bf16.truncate(2);
    let mut records = Vec::new();
    if end != End::None {
        println!("epilogue: bias, then {}", end.name());
    }
    println!("dtype   M     K     N  kernel        median_us   GOP/s  ratio");
    for &(k, n) in &kn {
        let w = common::values(n * k, 2, 0.5);
        let q = PackedI8Buf::quantize(&w, n, k);
        let g64 = act_group_sums(&q.q, k, 64);
        let g128 = act_group_sums(&q.q, k, 128);
        let b = pack_weights_bf16(&w, n, k);
        // With `--rotate MIB`, copies of the weights that fill that many MiB, a run on each in
        // turn; else the one set.
        let bytes = q.q.len() + std::mem::size_of_val(&b[..]);
        let copies = (rotate << 20).div_ceil(bytes.max(1)).max(1);
        let first = (q, g64, g128, b);
        let mut sets = vec![first.clone(); copies - 1];
        sets.insert(0, first);
        let turn = std::cell::Cell::new(0usize);
        for &m in &ms {
            let a = common::values(m * k, 1, 0.5);
            let mut c = vec![0.0f32; m * n];
            let (bias, residual) = (common::values(n, 3, 0.5), common::values(m * n, 4, 0.5));
            let extra = (end, &bias[..], &residual[..]);
            let weights = |wt: &str| {
                let (q, g64, g128, b) = &sets[turn.get() % copies];
                turn.set(turn.get() + 1);
                match wt {
                    "i8" => Weights::I8(q.view()),
                    "i8g64" => Weights::I8(PackedI8 {
                        groups: Some(ActGroups {
                            size: 64,
                            sums: g64,
                        }),
                        ..q.view()
                    }),
                    "i8g128" => Weights::I8(PackedI8 {
                        groups: Some(ActGroups {
                            size: 128,
                            sums: g128,
                        }),
                        ..q.view()
                    }),
                    _ => Weights::Bf16(b),
                }
            };
            for (wt, list) in [
                ("i8", &int8),
                ("i8g64", &int8),
                ("i8g128", &int8),
                ("bf16", &bf16),
            ] {
                if !dtypes.split(',').any(|d| d == wt) {
                    continue;
                }
                let mut first = None;
                for t in list.iter() {
                    let mut scratch = vec![GemmScratch::default(); threads];
                    let secs = median(min_ms, || {
                        let p = plain((m, n, k), &a, weights(wt), &mut c, extra);
                        match threads {
                            1 => t.gemm(p, &mut scratch[0]),
                            _ => gemm_par(t, p, &mut scratch, &pool),
                        }
                    });
                    let base = *first.get_or_insert(secs);
                    let kernel = if wt == "bf16" { t.bf16 } else { t.int8 };
                    report(&mut records, (wt, m, k, n, end), kernel, secs, base);
                    // The tiles with A in tile order, beside the AMX table's (one thread).
                    #[cfg(target_arch = "x86_64")]
                    if tile_order && t.isa == Isa::Amx && threads == 1 {
                        let gemm = |c: &mut [f32], s: &mut GemmScratch| {
                            let p = plain((m, n, k), &a, weights(wt), c, extra);
                            berth_kernels::gemm::gemm_tiles_in_tile_order(p, s)
                        };
                        if gemm(&mut c, &mut scratch[0]) {
                            let secs = median(min_ms, || {
                                gemm(&mut c, &mut scratch[0]);
                            });
                            report(&mut records, (wt, m, k, n, end), "amx-tileord", secs, base);
                        }
                    }
                }
            }
        }
    }
    if let Some(path) = opt("--json") {
        let body = format!("[\n{}\n]\n", records.join(",\n"));
        if let Err(e) = std::fs::write(&path, body) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
