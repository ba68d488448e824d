//! GEMM at BERT shapes, one thread: berth with f32, f16, bf16 and int8 weights on every ISA
//! (and int8 and bf16 variant, AMX tiles included where the CPU has them) this CPU runs, next
//! to the `gemm` crate and `matrixmultiply` on the same f32 shapes in the same run, plus the
//! register-only FMA, VNNI, `vdpbf16ps` and AMX peaks, so that each result can
//! be quoted as GFLOP/s (GOP/s for int8), fraction of peak and ratio to the peers. Throughput
//! is reported in elements/s where one element is one operation (2 M N K per GEMM).
//!
//!     cargo bench -p berth-benches --bench gemm                 # everything (~10 minutes)
//!     cargo bench -p berth-benches --bench gemm -- 'M=128/'      # one M
//!     python3 benches/gemm_table.py                              # the table

use std::time::Duration;

use berth_kernels::gemm::{
    act_group_sums, gemm_par, pack_weights, pack_weights_bf16, ActGroups, Epilogue, Gemm,
    GemmScratch, MatMut, PackedI8, PackedI8Buf, Weights,
};
use berth_kernels::{peak, supported_isas, variants, Isa, Kernels};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::{bf16, f16};

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

/// One shape's weights in the three packed types (int8 with activations per row, `i8`, or
/// per group of 64 or 128 elements of K, `i8g64` and `i8g128`).
struct Packed {
    f32: Vec<f32>,
    f16: Vec<f16>,
    bf16: Vec<bf16>,
    i8: PackedI8Buf,
    g64: Vec<f32>,
    g128: Vec<f32>,
}

impl Packed {
    fn new(w: &[f32], n: usize, k: usize) -> Packed {
        let h: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
        let i8 = PackedI8Buf::quantize(w, n, k);
        Packed {
            f32: pack_weights(w, n, k),
            f16: pack_weights(&h, n, k),
            bf16: pack_weights_bf16(w, n, k),
            g64: act_group_sums(&i8.q, k, 64),
            g128: act_group_sums(&i8.q, k, 128),
            i8,
        }
    }

    fn get(&self, wt: &str) -> Weights<'_> {
        let grouped = |size, sums| {
            Weights::I8(PackedI8 {
                groups: Some(ActGroups { size, sums }),
                ..self.i8.view()
            })
        };
        match wt {
            "f32" => Weights::F32(&self.f32),
            "f16" => Weights::F16(&self.f16),
            "bf16" => Weights::Bf16(&self.bf16),
            "i8g64" => grouped(64, &self.g64),
            "i8g128" => grouped(128, &self.g128),
            _ => Weights::I8(self.i8.view()),
        }
    }
}

/// `out = a W^T` with contiguous `m x k` A and `m x n` C: the call every bench times.
fn plain<'a>(
    a: &'a [f32],
    k: usize,
    w: Weights<'a>,
    out: &'a mut [f32],
    m: usize,
    n: usize,
) -> Gemm<'a> {
    Gemm {
        k,
        a,
        lda: k,
        w,
        bias: None,
        epilogue: Epilogue::None,
        c: MatMut::new(out, m, n, n),
    }
}

/// (label, table, weight type): f32 and f16 on each SIMD path, int8 on each int8 variant,
/// bf16 on each bf16 variant.
fn runs() -> Vec<(String, Kernels, &'static str)> {
    let mut out = Vec::new();
    for isa in supported_isas().into_iter().filter(|&i| i != Isa::Scalar) {
        let t = Kernels::for_isa(isa).expect("supported");
        out.push((format!("berth f32 {isa}"), t, "f32"));
        out.push((format!("berth f16 {isa}"), t, "f16"));
    }
    let mut seen = Vec::new();
    for t in variants().into_iter().filter(|t| t.isa != Isa::Scalar) {
        if !seen.contains(&t.int8) {
            seen.push(t.int8);
            out.push((format!("berth i8 {}", t.int8), t, "i8"));
            out.push((format!("berth i8g64 {}", t.int8), t, "i8g64"));
            out.push((format!("berth i8g128 {}", t.int8), t, "i8g128"));
        }
        let bf = format!("berth bf16 {} {}", t.isa, t.bf16);
        if !out.iter().any(|(label, _, _)| *label == bf) {
            out.push((bf, t, "bf16"));
        }
    }
    out
}

/// A register-only peak loop: iterations in, operations done out (`None` without the ISA).
type PeakLoop = fn(u64) -> Option<u64>;

fn peak_fma(c: &mut Criterion) {
    let mut g = c.benchmark_group("peak");
    const ITERS: u64 = 100_000;
    // Each loop returns the operations one call does, or None where the CPU lacks it.
    let loops: [(&str, PeakLoop); 7] = [
        ("fma f32 avx512", peak::fma_f32_avx512),
        ("fma f32 avx2", peak::fma_f32_avx2),
        ("vnni i8 avx512", peak::vnni_i8_avx512),
        ("vnni i8 avx", peak::vnni_i8_avx),
        ("dpbf16 bf16 avx512", peak::dpbf16_avx512),
        ("amx i8", peak::amx_i8),
        ("amx bf16", peak::amx_bf16),
    ];
    for (name, run) in loops {
        if let Some(ops) = run(1) {
            g.throughput(Throughput::Elements(ops * ITERS));
            g.bench_function(name, |b| b.iter(|| run(ITERS)));
        }
    }
    g.finish();
}

fn gemm_one_thread(c: &mut Criterion) {
    let runs = runs();
    for m in MS {
        let mut g = c.benchmark_group(format!("gemm M={m}"));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_millis(1200));
        g.sample_size(20);
        for (k, n) in KN {
            let a = values(m * k, 1);
            let w = values(n * k, 2);
            let packed = Packed::new(&w, n, k);
            let mut out = vec![0.0f32; m * n];
            let shape = format!("K={k} N={n}");
            g.throughput(Throughput::Elements((2 * m * n * k) as u64));
            for (label, t, wt) in &runs {
                let mut scratch = GemmScratch::default();
                let weights = packed.get(wt);
                g.bench_function(BenchmarkId::new(label, &shape), |b| {
                    b.iter(|| t.gemm(plain(&a, k, weights, &mut out, m, n), &mut scratch))
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

/// Two threads against one at M = 128 (the pool splits the weight panels), f32 and int8.
fn gemm_threads(c: &mut Criterion) {
    let kernels = berth_kernels::kernels().expect("a path this CPU runs");
    let m = 128;
    let mut g = c.benchmark_group(format!("gemm threads M={m}"));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_millis(1500));
    g.sample_size(20);
    for (k, n) in KN {
        let a = values(m * k, 1);
        let w = values(n * k, 2);
        let packed = Packed::new(&w, n, k);
        let mut out = vec![0.0f32; m * n];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for wt in ["f32", "bf16", "i8", "i8g64"] {
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("pool");
                let mut scratch = vec![GemmScratch::default(); threads];
                let weights = packed.get(wt);
                g.bench_function(
                    BenchmarkId::new(format!("{wt} {threads} threads"), format!("K={k} N={n}")),
                    |b| {
                        b.iter(|| {
                            let p = plain(&a, k, weights, &mut out, m, n);
                            gemm_par(kernels, p, &mut scratch, &pool)
                        })
                    },
                );
            }
        }
    }
    g.finish();
}

/// Small M with the weights streamed, as in a forward pass: a model's weights do not fit in L2,
/// and at M <= 32 each weight is used by few tokens. Each iteration takes the next of enough
/// copies of the weights to span 128 MiB as f32 (64 MiB as f16 or bf16, 32 as int8), so they
/// come from L3 or memory, unlike in the `gemm M=8` group, where one matrix is reused and stays
/// in L2. (The development VM reports 260 MiB of L3, so there they may stay in L3.)
fn gemm_streamed(c: &mut Criterion) {
    const SPAN: usize = 128 << 20;
    let kernels = berth_kernels::kernels().expect("a path this CPU runs");
    for m in [8, 32] {
        let mut g = c.benchmark_group(format!("gemm streamed M={m}"));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_millis(1500));
        g.sample_size(20);
        for (k, n) in KN {
            let a = values(m * k, 1);
            let w = values(n * k, 2);
            let copies = SPAN.div_ceil(n * k * 4).max(2);
            let packed: Vec<Packed> = (0..copies).map(|_| Packed::new(&w, n, k)).collect();
            let mut out = vec![0.0f32; m * n];
            g.throughput(Throughput::Elements((2 * m * n * k) as u64));
            for wt in ["f32", "f16", "bf16", "i8"] {
                let mut scratch = GemmScratch::default();
                let mut next = 0usize;
                g.bench_function(BenchmarkId::new(wt, format!("K={k} N={n}")), |b| {
                    b.iter(|| {
                        next = (next + 1) % copies;
                        kernels.gemm(
                            plain(&a, k, packed[next].get(wt), &mut out, m, n),
                            &mut scratch,
                        )
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(
    benches,
    peak_fma,
    gemm_one_thread,
    gemm_threads,
    gemm_streamed
);
criterion_main!(benches);
