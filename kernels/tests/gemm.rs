//! f32 GEMM of every dispatch table this CPU can run against the f64 reference
//! (`Kernels::REFERENCE.gemm_f32`): M, N and K over 0..=17 (the full cube), each tile size
//! plus and minus one (MR 6 and 8, NR 16 and 32), the K and M block sizes plus and minus one, deep K (4096), strided A, C and residual, every epilogue, with and without bias.
//! Tolerance: `berth_kernels::tolerance::gemm_f32`, with its reason there.

mod common;

use berth_kernels::gemm::{gemm_f32_par, pack_weights, Epilogue, GemmF32, GemmScratch, MatMut};
use berth_kernels::{supported_isas, tolerance, Kernels};

fn values(n: usize, seed: u64) -> Vec<f32> {
    common::values(n, seed, 1.0)
}

#[derive(Clone, Copy, Debug)]
enum Epi {
    None,
    Gelu,
    Residual,
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldc: usize,
    bias: bool,
    epi: Epi,
}

/// Runs one case on `kernels` and on the reference; checks every element of C, and that the
/// padding between rows of a strided C is untouched.
fn check(kernels: &Kernels, c: &Case, scratch: &mut GemmScratch) {
    let (m, n, k) = (c.m, c.n, c.k);
    let seed = (m * 1_000_003 + n * 1009 + k) as u64;
    let a = values(m.max(1) * c.lda, seed);
    let w = values(n * k, seed + 1);
    let packed = pack_weights(&w, n, k);
    let bias = values(n, seed + 2);
    let ldr = n + 3;
    let res = values(m.max(1) * ldr, seed + 3);
    let epilogue = match c.epi {
        Epi::None => Epilogue::None,
        Epi::Gelu => Epilogue::Gelu,
        Epi::Residual => Epilogue::Residual { r: &res, ld: ldr },
    };
    let run = |f: fn(GemmF32<'_>, &mut GemmScratch), scratch: &mut GemmScratch| {
        let mut out = vec![f32::NAN; m.max(1) * c.ldc];
        f(
            GemmF32 {
                k,
                a: &a,
                lda: c.lda,
                w: &packed,
                bias: c.bias.then_some(&bias[..]),
                epilogue,
                c: MatMut::new(&mut out, m, n, c.ldc),
            },
            scratch,
        );
        out
    };
    let want = run(Kernels::REFERENCE.gemm_f32, scratch);
    let got = run(kernels.gemm_f32, scratch);
    for i in 0..m {
        for j in 0..c.ldc {
            let (g, wv) = (got[i * c.ldc + j], want[i * c.ldc + j]);
            if j >= n {
                assert!(g.is_nan(), "{} wrote outside C at ({i}, {j})", kernels.isa);
                continue;
            }
            let mut sum_abs: f32 = (0..k)
                .map(|kk| (a[i * c.lda + kk] * w[j * k + kk]).abs())
                .sum();
            if c.bias {
                sum_abs += bias[j].abs();
            }
            if matches!(c.epi, Epi::Residual) {
                sum_abs += res[i * ldr + j].abs();
            }
            let mut tol = tolerance::gemm_f32(k, sum_abs);
            if matches!(c.epi, Epi::Gelu) {
                tol += tolerance::gelu(sum_abs);
            }
            assert!(
                tolerance::within(g, wv, tol),
                "{} m={m} n={n} k={k} lda={} ldc={} bias={} {:?} at ({i}, {j}): {g} vs {wv} (tol {tol})",
                kernels.isa,
                c.lda,
                c.ldc,
                c.bias,
                c.epi
            );
        }
    }
}

fn tables() -> Vec<Kernels> {
    supported_isas()
        .into_iter()
        .map(|i| Kernels::for_isa(i).unwrap())
        .collect()
}

#[test]
fn every_small_shape() {
    for kernels in tables() {
        let mut scratch = GemmScratch::default();
        let mut idx = 0usize;
        for m in 0..=17 {
            for n in 0..=17 {
                for k in 0..=17 {
                    idx += 1;
                    let epi = [Epi::None, Epi::Gelu, Epi::Residual][idx % 3];
                    let strided = idx.is_multiple_of(2);
                    let case = Case {
                        m,
                        n,
                        k,
                        lda: k + if strided { 5 } else { 0 },
                        ldc: n + if strided { 3 } else { 0 },
                        bias: idx % 4 != 1,
                        epi,
                    };
                    check(&kernels, &case, &mut scratch);
                }
            }
        }
    }
}

/// Tile edges (MR 6 and 8, NR 16 and 32) and block edges (KC, MC from the crate, so the test
/// follows the blocking if it changes; K blocks are balanced, so 2 KC + 1 gives three).
#[test]
fn tile_and_block_edges() {
    use berth_kernels::gemm::{KC, MC};
    let ms = [1, 5, 6, 7, 8, 9, 15, 16, 17, MC - 1, MC, MC + 1];
    let ns = [15, 16, 17, 31, 32, 33, 63, 64, 65];
    let ks = [1, 31, KC - 1, KC, KC + 1, 2 * KC + 1];
    for kernels in tables() {
        let mut scratch = GemmScratch::default();
        let mut idx = 0usize;
        for &m in &ms {
            for &n in &ns {
                for &k in &ks {
                    idx += 1;
                    let case = Case {
                        m,
                        n,
                        k,
                        lda: k + idx % 3,
                        ldc: n + idx % 2,
                        bias: !idx.is_multiple_of(3),
                        epi: [Epi::None, Epi::Gelu, Epi::Residual][idx % 3],
                    };
                    check(&kernels, &case, &mut scratch);
                }
            }
        }
    }
}

#[test]
fn deep_k() {
    for kernels in tables() {
        let mut scratch = GemmScratch::default();
        for (m, n) in [(1, 1), (3, 17), (13, 33)] {
            for epi in [Epi::None, Epi::Gelu, Epi::Residual] {
                let case = Case {
                    m,
                    n,
                    k: 4096,
                    lda: 4096,
                    ldc: n,
                    bias: true,
                    epi,
                };
                check(&kernels, &case, &mut scratch);
            }
        }
    }
}

/// BERT shapes, compared with the reference: the sizes the engine will call.
#[test]
fn bert_shapes() {
    for kernels in tables() {
        let mut scratch = GemmScratch::default();
        for (m, k, n) in [
            (8, 384, 1152),
            (32, 384, 1536),
            (40, 1536, 384),
            (7, 768, 768),
        ] {
            let case = Case {
                m,
                n,
                k,
                lda: k,
                ldc: n,
                bias: true,
                epi: Epi::Gelu,
            };
            check(&kernels, &case, &mut scratch);
        }
    }
}

/// Any number of threads gives bit-identical results (each part of N is a GEMM of its own that
/// starts on a panel boundary), on every path, for every epilogue.
#[test]
fn threads_are_bit_identical() {
    let pools: Vec<rayon::ThreadPool> = (1..=4)
        .map(|t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect();
    for kernels in tables() {
        for (m, k, n) in [(1, 7, 1), (9, 64, 33), (13, 300, 200), (128, 384, 385)] {
            let a = values(m * k, 5);
            let w = values(n * k, 6);
            let packed = pack_weights(&w, n, k);
            let bias = values(n, 7);
            let res = values(m * n, 8);
            for epilogue in [
                Epilogue::None,
                Epilogue::Gelu,
                Epilogue::Residual { r: &res, ld: n },
            ] {
                let run = |pool: &rayon::ThreadPool| {
                    let mut out = vec![f32::NAN; m * n];
                    let mut scratch = vec![GemmScratch::default(); pool.current_num_threads()];
                    let p = GemmF32 {
                        k,
                        a: &a,
                        lda: k,
                        w: &packed,
                        bias: Some(&bias),
                        epilogue,
                        c: MatMut::new(&mut out, m, n, n),
                    };
                    gemm_f32_par(kernels.gemm_f32, p, &mut scratch, pool);
                    out
                };
                let one = run(&pools[0]);
                assert!(one.iter().all(|v| v.is_finite()));
                for pool in &pools[1..] {
                    let got = run(pool);
                    let same = got
                        .iter()
                        .zip(&one)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(
                        same,
                        "{} m={m} k={k} n={n} {} threads differ",
                        kernels.isa,
                        pool.current_num_threads()
                    );
                }
            }
        }
    }
}
