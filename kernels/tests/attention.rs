//! The fused attention kernel of every table this CPU runs, against the f64 twin
//! (`attention_ref`), over sequence lengths that reach every lane, block and key-tile edge
//! (tiles are 8 vectors of keys: 32, 64 or 128) and head sizes below, at and above a vector,
//! with the head's columns read at a stride inside wider Q, K and V. Tolerance:
//! `berth_kernels::tolerance::attention`, with its reason.

mod common;

use berth_kernels::attention::{AttentionHead, AttentionScratch};
use berth_kernels::gemm::MatMut;
use berth_kernels::{supported_isas, tolerance, Isa, Kernels};
use common::values;

fn tables() -> Vec<Kernels> {
    let forced = std::env::var("BERTH_ISA").ok().and_then(|v| Isa::parse(&v));
    supported_isas()
        .into_iter()
        .filter(|i| *i != Isa::Scalar && forced.is_none_or(|f| f == *i))
        .map(|i| Kernels::for_isa(i).unwrap())
        .collect()
}

fn check(tables: &[Kernels], n: usize, d: usize, score_size: f32) {
    // Three heads side by side: this head is the middle one.
    let ld = 3 * d + 1;
    let seed = (n * 131 + d) as u64;
    let q = values(n * ld, seed, score_size);
    let k = values(n * ld, seed + 1, 1.0);
    let v = values(n * ld, seed + 2, 1.0);
    let scale = (d as f32).powf(-0.5);
    let run = |t: &Kernels, out: &mut Vec<f32>| {
        out.clear();
        out.resize(n * ld, f32::NAN);
        (t.attention)(
            AttentionHead {
                n,
                d,
                q: &q[d..],
                ldq: ld,
                k: &k[d..],
                ldk: ld,
                v: &v[d..],
                ldv: ld,
                scale,
                out: MatMut::new(&mut out[d..], n, d, ld),
            },
            &mut AttentionScratch::default(),
        );
    };
    let mut want = Vec::new();
    run(&Kernels::REFERENCE, &mut want);
    let mut got = Vec::new();
    for t in tables {
        run(t, &mut got);
        for i in 0..n {
            let score_abs = (0..n)
                .map(|j| {
                    (0..d)
                        .map(|c| (q[i * ld + d + c] * k[j * ld + d + c]).abs())
                        .sum::<f32>()
                })
                .fold(0.0f32, f32::max)
                * scale;
            for c in 0..ld {
                let (g, w) = (got[i * ld + c], want[i * ld + c]);
                if !(d..2 * d).contains(&c) {
                    assert!(g.is_nan(), "{} wrote outside the head at ({i}, {c})", t.isa);
                    continue;
                }
                let v_abs = (0..n).map(|j| v[j * ld + c].abs()).fold(0.0f32, f32::max);
                let tol = tolerance::attention(n, d, score_abs, v_abs);
                assert!(
                    tolerance::within(g, w, tol),
                    "{} n={n} d={d} at ({i}, {}): {g} vs {w} (tol {tol})",
                    t.isa,
                    c - d
                );
            }
        }
    }
}

#[test]
fn every_edge() {
    let tables = tables();
    let ns = [
        1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200,
    ];
    for &n in &ns {
        for d in [1, 3, 4, 8, 16, 24, 32, 64, 100, 136] {
            check(&tables, n, d, 1.0);
        }
    }
}

/// Sharp softmaxes (scores up to about +-100): the online rescaling across key tiles, and
/// weights that underflow to 0.
#[test]
fn large_scores_and_long_sequences() {
    let tables = tables();
    for n in [129, 300, 513] {
        for d in [32, 64] {
            check(&tables, n, d, 8.0);
        }
    }
}
