//! Every slot of every dispatch table this CPU can run, held against the scalar reference twin
//! (`Kernels::REFERENCE`) over lengths that reach every tail: 0..=17, each lane count (4, 8,
//! 16) times 2^k plus and minus one, and deep rows (4096, 4097). Tolerances come from
//! `berth_kernels::tolerance`, where each has its reason; integer and conversion results are
//! exact.

mod common;

use berth_kernels::elementwise::LayerNormRows;
use berth_kernels::{supported_isas, tolerance, Isa, Kernels};
use common::values;
use half::f16;

fn lengths() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=17).collect();
    for base in [32, 64, 128, 256, 1024] {
        v.extend([base - 1, base, base + 1]);
    }
    v.extend([4096, 4097]);
    v
}

fn tables() -> Vec<Kernels> {
    let t: Vec<Kernels> = supported_isas()
        .into_iter()
        .map(|i| Kernels::for_isa(i).expect("supported"))
        .collect();
    assert!(t.iter().any(|k| k.isa == Isa::Scalar));
    t
}

#[test]
fn the_selected_table_is_the_forced_one() {
    let k = berth_kernels::kernels().expect("BERTH_ISA names a path this CPU runs");
    assert_eq!(Ok(k.isa), berth_kernels::isa::selected());
    if let Ok(v) = std::env::var("BERTH_ISA") {
        if !v.trim().is_empty() {
            assert_eq!(
                k.isa,
                Isa::parse(&v).unwrap(),
                "BERTH_ISA={v} did not take effect"
            );
        }
    }
    println!(
        "running on {}; this CPU supports {:?}",
        k.isa,
        supported_isas()
    );
}

#[test]
fn f16_widening_is_exact_on_every_path() {
    let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
    let mut want = vec![0.0; all.len()];
    (Kernels::REFERENCE.f16_to_f32)(&all, &mut want);
    for k in tables() {
        for n in lengths() {
            let mut got = vec![0.0; n];
            (k.f16_to_f32)(&all[1000..1000 + n], &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want[1000..1000 + n]), "{} n={n}", k.isa);
        }
        let mut got = vec![0.0; all.len()];
        (k.f16_to_f32)(&all, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{} bits {i:#06x}",
                k.isa
            );
        }
    }
}

#[test]
fn quantisation_is_bit_identical_on_every_path() {
    for k in tables() {
        for n in lengths() {
            for (seed, scale, shift) in [
                (1, 1.0f32, 0.0f32),
                (2, 1e-3, 0.0),
                (3, 300.0, 0.0),
                (4, 0.0, 0.0),
                // Rows of one sign, and mostly one sign.
                (5, 1.0, 1.0),
                (6, 1.0, -1.0),
                (7, 2.0, 0.5),
            ] {
                let mut x: Vec<f32> = values(n, seed, scale).iter().map(|v| v + shift).collect();
                // Values near half-way between steps.
                if n > 3 {
                    let m = x.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1.0);
                    x[0] = m;
                    let step = m / 255.0;
                    x[1] = 2.5 * step;
                    x[2] = -3.5 * step;
                }
                let (mut qr, mut qk) = (vec![0u8; n], vec![0u8; n]);
                let (sr, zr) = (Kernels::REFERENCE.quantize_row_asym)(&x, &mut qr);
                let (sk, zk) = (k.quantize_row_asym)(&x, &mut qk);
                assert_eq!(sk.to_bits(), sr.to_bits(), "{} n={n} seed={seed}", k.isa);
                assert_eq!(zk, zr, "{} n={n} seed={seed}", k.isa);
                assert_eq!(qk, qr, "{} n={n} seed={seed}", k.isa);
            }
            // Exact ties: a range of 255 makes `inv` 1, so `x + zero` is `j + 0.5` and must
            // round to the even neighbour, on both sides of zero (zero point 0 and 255).
            if n > 1 {
                for sign in [1.0f32, -1.0] {
                    let x: Vec<f32> = (0..n)
                        .map(|i| match i {
                            0 => 255.0 * sign,
                            _ => sign * (((i * 7) % 255) as f32 + 0.5),
                        })
                        .collect();
                    let zero = if sign > 0.0 { 0.0 } else { 255.0 };
                    let want: Vec<u8> = x
                        .iter()
                        .map(|v| (v + zero).round_ties_even() as u8)
                        .collect();
                    for t in [&Kernels::REFERENCE, &k] {
                        let mut q = vec![0u8; n];
                        let (s, z) = (t.quantize_row_asym)(&x, &mut q);
                        assert_eq!((s, z), (1.0, zero as i32), "{} n={n}", t.isa);
                        assert_eq!(q, want, "{} n={n} sign={sign}", t.isa);
                    }
                }
            }
        }
    }
}

#[test]
fn layer_norm_matches_the_reference() {
    for k in tables() {
        for cols in lengths().into_iter().filter(|&c| c > 0) {
            for rows in [1, 3] {
                for with_residual in [false, true] {
                    let x = values(rows * cols, cols as u64, 4.0);
                    let res = values(rows * cols, 7 + cols as u64, 2.0);
                    let gamma: Vec<f32> = values(cols, 11, 1.0).iter().map(|v| 1.0 + v).collect();
                    let beta = values(cols, 13, 0.5);
                    let run = |f: fn(LayerNormRows<'_>)| {
                        let mut y = x.clone();
                        f(LayerNormRows {
                            x: &mut y,
                            residual: with_residual.then_some(&res[..]),
                            gamma: &gamma,
                            beta: &beta,
                            eps: 1e-12,
                        });
                        y
                    };
                    let (want, got) = (run(Kernels::REFERENCE.layer_norm), run(k.layer_norm));
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let (gm, bt) = (gamma[i % cols], beta[i % cols]);
                        let z = (w - bt) / gm;
                        let tol = tolerance::layer_norm(cols, gm, bt, z);
                        assert!(
                            tolerance::within(*g, *w, tol),
                            "{} cols={cols} rows={rows} res={with_residual} i={i}: {g} vs {w} (tol {tol})",
                            k.isa
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn softmax_matches_the_reference() {
    for k in tables() {
        for n in lengths() {
            for (seed, scale) in [(1, 1.0f32), (2, 30.0), (3, 1e-3)] {
                let mut x = values(n, seed, scale);
                if n > 2 {
                    x[1] = f32::MIN; // a masked score
                    x[2] = -1e30;
                }
                let (mut want, mut got) = (x.clone(), x.clone());
                (Kernels::REFERENCE.softmax)(&mut want);
                (k.softmax)(&mut got);
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let tol = tolerance::softmax(n, *w, x[i] - max);
                    assert!(
                        tolerance::within(*g, *w, tol),
                        "{} n={n} seed={seed} i={i}: {g} vs {w} (tol {tol})",
                        k.isa
                    );
                }
                if n > 0 {
                    let s: f32 = got.iter().sum();
                    assert!((s - 1.0).abs() < 1e-5, "{} n={n}: sum {s}", k.isa);
                }
            }
        }
    }
}

/// GELU against f64, on a dense grid over [-10, 10] plus lengths that reach every tail; the
/// largest error seen is printed (the bound is `tolerance::gelu`).
#[test]
fn gelu_matches_the_reference() {
    let grid: Vec<f32> = (0..=200_000).map(|i| -10.0 + i as f32 * 1e-4).collect();
    let mut want = grid.clone();
    (Kernels::REFERENCE.gelu)(&mut want);
    for k in tables() {
        let mut got = grid.clone();
        (k.gelu)(&mut got);
        let mut worst = (0.0f32, 0.0f32);
        for ((g, w), x) in got.iter().zip(&want).zip(&grid) {
            let err = (g - w).abs();
            if err > worst.0 {
                worst = (err, *x);
            }
            assert!(
                tolerance::within(*g, *w, tolerance::gelu(*x)),
                "{} x={x}: {g} vs {w}",
                k.isa
            );
        }
        println!(
            "{}: GELU max abs error vs f64 over [-10, 10]: {:.2e} at x = {}",
            k.isa, worst.0, worst.1
        );
        for n in lengths() {
            let x = values(n, n as u64, 6.0);
            let (mut w, mut g) = (x.clone(), x.clone());
            (Kernels::REFERENCE.gelu)(&mut w);
            (k.gelu)(&mut g);
            for ((g, w), x) in g.iter().zip(&w).zip(&x) {
                assert!(
                    tolerance::within(*g, *w, tolerance::gelu(*x)),
                    "{} n={n} x={x}: {g} vs {w}",
                    k.isa
                );
            }
        }
    }
}

/// GELU saturates exactly, on every path: `x` itself for large positive `x` and 0 for large
/// negative `x` (the SIMD erf is exactly +-1 past its clamp, 5.544), as in f64.
#[test]
fn gelu_saturates_exactly() {
    let big = [40.0f32, 1e3, 1e30, f32::MAX];
    for k in tables() {
        for &b in &big {
            let mut x = vec![b; 37];
            x.extend(vec![-b; 37]);
            (k.gelu)(&mut x);
            for (i, g) in x.iter().enumerate() {
                let want = if i < 37 { b } else { 0.0 };
                assert!(
                    *g == want,
                    "{} gelu({}) = {g}",
                    k.isa,
                    if i < 37 { b } else { -b }
                );
            }
        }
    }
}
