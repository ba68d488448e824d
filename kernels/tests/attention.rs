//! The fused attention kernel of every table this CPU runs, against the f64 twin
//! (`attention_ref`), over sequence lengths that reach every lane, block and key-tile edge
//! (tiles are 8 vectors of keys: 32, 64 or 128) and head sizes below, at and above a vector,
//! with the head's columns read at a stride inside wider Q, K and V. Tolerance:
//! `berth_kernels::tolerance::attention`, with its reason. The bf16 kernel of every table
//! (`vdpbf16ps` and the widened paths) likewise against its twin, `attention_bf16_ref`
//! (`tolerance::attention_bf16`), and the tables of one path give it the same bits whichever
//! instruction computes the bf16 dot products.

#[path = "common/attention.rs"]
mod attention;
mod common;

use berth_kernels::attention::{AttentionHead, AttentionScratch};
use berth_kernels::gemm::MatMut;
use berth_kernels::{tolerance, Isa, Kernels};
use common::values;

/// Every table of every path but the scalar one (whose kernels are the twins), or of the path
/// `BERTH_ISA` forces: with and without the optional dot-product instructions.
fn tables() -> Vec<Kernels> {
    let forced = std::env::var("BERTH_ISA").ok().and_then(|v| Isa::parse(&v));
    berth_kernels::variants()
        .into_iter()
        .filter(|k| k.isa != Isa::Scalar && forced.is_none_or(|f| f == k.isa))
        .collect()
}

/// The f32 kernel, or the bf16 one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    F32,
    Bf16,
}

fn slot(t: &Kernels, kind: Kind) -> fn(AttentionHead<'_>, &mut AttentionScratch) {
    match kind {
        Kind::F32 => t.attention,
        Kind::Bf16 => t.attention_bf16,
    }
}

fn check(tables: &[Kernels], n: usize, d: usize, score_size: f32) {
    check_kind(tables, n, d, score_size, Kind::F32);
    check_kind(tables, n, d, score_size, Kind::Bf16);
}

fn check_kind(tables: &[Kernels], n: usize, d: usize, score_size: f32, kind: Kind) {
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
        slot(t, kind)(
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
    let (score_abs, v_abs) = attention::bounds(&q, &k, &v, (n, d, ld), scale);
    let mut want = Vec::new();
    run(&Kernels::REFERENCE, &mut want);
    let mut got = Vec::new();
    // The bits of each path's first table (bf16: every table of a path gives the same).
    let mut first: Vec<(Isa, Vec<f32>)> = Vec::new();
    for t in tables {
        run(t, &mut got);
        if kind == Kind::Bf16 {
            match first.iter().find(|(isa, _)| *isa == t.isa) {
                Some((_, bits)) => {
                    assert!(
                    bits.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} ({}) n={n} d={d}: bf16 attention differs from another table of the path",
                    t.isa,
                    t.bf16
                )
                }
                None => first.push((t.isa, got.clone())),
            }
        }
        for i in 0..n {
            for c in 0..ld {
                let (g, w) = (got[i * ld + c], want[i * ld + c]);
                if !(d..2 * d).contains(&c) {
                    assert!(g.is_nan(), "{} wrote outside the head at ({i}, {c})", t.isa);
                    continue;
                }
                let tol = match kind {
                    Kind::F32 => tolerance::attention(n, d, score_abs[i], v_abs[c]),
                    Kind::Bf16 => tolerance::attention_bf16(n, d, score_abs[i], v_abs[c]),
                };
                assert!(
                    tolerance::within(g, w, tol),
                    "{} ({}) {kind:?} n={n} d={d} at ({i}, {}): {g} vs {w} (tol {tol})",
                    t.isa,
                    t.bf16,
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
