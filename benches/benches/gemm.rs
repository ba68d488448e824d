//! f32 GEMM at BERT shapes, one thread: berth on every ISA this CPU runs, next to the `gemm`
//! crate and `matrixmultiply` on the same shapes in the same run, plus the register-only FMA
//! peak, so that each result can be quoted as GFLOP/s, fraction of peak and ratio to the peers.
//! Throughput is reported in elements/s where one element is one floating-point operation
//! (2 M N K per GEMM), i.e. FLOP/s.
//!
//!     cargo bench -p berth-benches --bench gemm              # everything (~4 minutes)
//!     cargo bench -p berth-benches --bench gemm -- 'M=128'    # one M

use std::time::Duration;

use berth_kernels::gemm::{gemm_f32_par, pack_weights, Epilogue, GemmF32, GemmScratch, MatMut};
use berth_kernels::{peak, supported_isas, Isa, Kernels};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// (K, N): BERT's QKV, attention output, FFN up and down, for MiniLM (384) and BERT-base (768).
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
const MS: [usize; 4] = [8, 32, 128, 512];

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn peak_fma(c: &mut Criterion) {
    let mut g = c.benchmark_group("peak");
    const ITERS: u64 = 100_000;
    if let Some(flops) = peak::fma_f32_avx512(1) {
        g.throughput(Throughput::Elements(flops * ITERS));
        g.bench_function("fma f32 avx512", |b| b.iter(|| peak::fma_f32_avx512(ITERS)));
    }
    if let Some(flops) = peak::fma_f32_avx2(1) {
        g.throughput(Throughput::Elements(flops * ITERS));
        g.bench_function("fma f32 avx2", |b| b.iter(|| peak::fma_f32_avx2(ITERS)));
    }
    g.finish();
}

fn gemm_f32(c: &mut Criterion) {
    let tables: Vec<Kernels> = supported_isas()
        .into_iter()
        .filter(|&i| i != Isa::Scalar)
        .map(|i| Kernels::for_isa(i).expect("supported"))
        .collect();
    for m in MS {
        let mut g = c.benchmark_group(format!("gemm_f32 M={m}"));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_millis(1200));
        g.sample_size(20);
        for (k, n) in KN {
            let a = values(m * k, 1);
            let w = values(n * k, 2);
            let packed = pack_weights(&w, n, k);
            let mut out = vec![0.0f32; m * n];
            let shape = format!("K={k} N={n}");
            g.throughput(Throughput::Elements((2 * m * n * k) as u64));
            for t in &tables {
                let mut scratch = GemmScratch::default();
                g.bench_function(BenchmarkId::new(format!("berth {}", t.isa), &shape), |b| {
                    b.iter(|| {
                        (t.gemm_f32)(
                            GemmF32 {
                                k,
                                a: &a,
                                lda: k,
                                w: &packed,
                                bias: None,
                                epilogue: Epilogue::None,
                                c: MatMut::new(&mut out, m, n, n),
                            },
                            &mut scratch,
                        )
                    })
                });
            }
            g.bench_function(BenchmarkId::new("gemm crate", &shape), |b| {
                b.iter(|| {
                    // SAFETY: the strides describe A (m x k, row-major), W^T (k x n read from
                    // the n x k row-major W) and C (m x n, row-major), all in bounds.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            out.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            a.as_ptr(),
                            1,
                            k as isize,
                            w.as_ptr(),
                            k as isize,
                            1,
                            0.0f32,
                            1.0f32,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        )
                    }
                })
            });
            g.bench_function(BenchmarkId::new("matrixmultiply", &shape), |b| {
                b.iter(|| {
                    // SAFETY: as above, with (row, column) strides.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr(),
                            k as isize,
                            1,
                            w.as_ptr(),
                            1,
                            k as isize,
                            0.0,
                            out.as_mut_ptr(),
                            n as isize,
                            1,
                        )
                    }
                })
            });
        }
        g.finish();
    }
}

/// Two threads against one at M = 128 (the pool splits the weight panels).
fn gemm_f32_threads(c: &mut Criterion) {
    let kernels = berth_kernels::kernels().expect("a path this CPU runs");
    let m = 128;
    let mut g = c.benchmark_group(format!("gemm_f32 threads M={m}"));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_millis(1500));
    g.sample_size(20);
    for (k, n) in KN {
        let a = values(m * k, 1);
        let w = values(n * k, 2);
        let packed = pack_weights(&w, n, k);
        let mut out = vec![0.0f32; m * n];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut scratch = vec![GemmScratch::default(); threads];
            g.bench_function(
                BenchmarkId::new(format!("{threads} threads"), format!("K={k} N={n}")),
                |b| {
                    b.iter(|| {
                        let p = GemmF32 {
                            k,
                            a: &a,
                            lda: k,
                            w: &packed,
                            bias: None,
                            epilogue: Epilogue::None,
                            c: MatMut::new(&mut out, m, n, n),
                        };
                        gemm_f32_par(kernels.gemm_f32, p, &mut scratch, &pool)
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, peak_fma, gemm_f32, gemm_f32_threads);
criterion_main!(benches);
