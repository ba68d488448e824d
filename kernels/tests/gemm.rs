//! GEMM of every dispatch table this CPU can run, for f32, f16, bf16 and int8 weights, against
//! the reference (`Kernels::REFERENCE`, f64): M, N and K over 0..=17 (the full cube), each
//! tile size plus and minus one (MR 4, 6 and 8, NR 16 and 32), the K and M block sizes plus
//! and minus one, deep K (4096), strided A, C and residual, every epilogue, with and without
//! bias. int8 and bf16 run on every variant (with and without VNNI, dotprod or AVX-512 BF16).
//! Tolerances: `berth_kernels::tolerance::{gemm_f32, gemm_i8}`, with their reasons there (bf16
//! takes f32's, over A and W rounded to bf16 as the kernels round them); int8 sums are also
//! checked exact, with scales chosen so that the result is exactly representable, and bf16
//! paths bit-exact against a scalar emulation of `vdpbf16ps`.

mod common;

use berth_kernels::gemm::{
    act_group_sums, act_groups, gemm_par, pack_weights, pack_weights_bf16, to_bf16, ActGroups,
    Epilogue, Gemm, GemmScratch, MatMut, PackedI8, PackedI8Buf, Weights, KC_I8,
};
use berth_kernels::quant::{quantize_row_asym, quantize_row_i8};
use berth_kernels::{supported_isas, tolerance, variants, Kernels};
use half::{bf16, f16};

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
    /// int8 activations per group of this many elements of K, or per row.
    group: Option<usize>,
}

/// The int8 activation grouping of a shape: per row or per group of 4, 8 or 64 (several groups
/// in most shapes, a partial last one in many).
fn pick_group(m: usize, n: usize, k: usize) -> Option<usize> {
    [None, Some(4), Some(8), Some(64)][(m + 2 * n + 3 * k) % 4]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Wt {
    F32,
    F16,
    I8,
    Bf16,
}

/// The weights of one case, packed, and the values the reference multiplies (dequantised for
/// int8, widened for f16), row-major, for the tolerance.
struct Packed {
    f32: Vec<f32>,
    f16: Vec<f16>,
    bf16: Vec<bf16>,
    i8: Option<PackedI8Buf>,
    /// Activation group size and the weights' sums for it (int8 only).
    groups: Option<(usize, Vec<f32>)>,
    effective: Vec<f32>,
}

impl Packed {
    /// `group`: int8 activations quantised per group of that many elements of K.
    fn new(wt: Wt, w: &[f32], n: usize, k: usize, group: Option<usize>) -> Packed {
        let mut p = Packed {
            f32: Vec::new(),
            f16: Vec::new(),
            bf16: Vec::new(),
            i8: None,
            groups: None,
            effective: w.to_vec(),
        };
        match wt {
            Wt::F32 => p.f32 = pack_weights(w, n, k),
            Wt::F16 => {
                let h: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
                p.effective = h.iter().map(|x| x.to_f32()).collect();
                p.f16 = pack_weights(&h, n, k);
            }
            Wt::Bf16 => {
                p.effective = w.iter().map(|&x| to_bf16(x).to_f32()).collect();
                p.bf16 = pack_weights_bf16(w, n, k);
            }
            Wt::I8 => {
                let mut q = vec![0i8; k];
                for (row, eff) in w
                    .chunks_exact(k.max(1))
                    .zip(p.effective.chunks_exact_mut(k.max(1)))
                {
                    let s = quantize_row_i8(row, &mut q);
                    for (e, &qi) in eff.iter_mut().zip(&q) {
                        *e = s * f32::from(qi);
                    }
                }
                let b = PackedI8Buf::quantize(w, n, k);
                p.groups = group.map(|size| (size, act_group_sums(&b.q, k, size)));
                p.i8 = Some(b);
            }
        }
        p
    }

    fn weights<'a>(&'a self, input_scale: Option<&'a [f32]>) -> Weights<'a> {
        match &self.i8 {
            Some(b) => Weights::I8(PackedI8 {
                input_scale,
                groups: self
                    .groups
                    .as_ref()
                    .map(|(size, sums)| ActGroups { size: *size, sums }),
                ..b.view()
            }),
            None if !self.f16.is_empty() => Weights::F16(&self.f16),
            None if !self.bf16.is_empty() => Weights::Bf16(&self.bf16),
            None => Weights::F32(&self.f32),
        }
    }
}

/// The activations the reference multiplies: A itself, or for int8 each row multiplied by the
/// input scales (if any), quantised (asymmetrically, per row or per group of `group` elements,
/// as the GEMM does) and dequantised. Second, for the int8 tolerance, per element a bound on
/// the magnitude of what the GEMM sums for it: the scale times (code + zero point + 256), which
/// covers both the code's product and the zero point's, with or without the 128 offset.
fn effective_a(
    wt: Wt,
    a: &[f32],
    rows: usize,
    lda: usize,
    k: usize,
    input_scale: Option<&[f32]>,
    group: Option<usize>,
) -> (Vec<f32>, Vec<f32>) {
    let mut out = a.to_vec();
    if wt == Wt::Bf16 {
        out.iter_mut().for_each(|x| *x = to_bf16(*x).to_f32());
    }
    let mut mag = out.iter().map(|x| x.abs()).collect::<Vec<f32>>();
    if wt == Wt::I8 {
        let size = group.unwrap_or(k.max(1));
        let mut q = vec![0u8; size];
        for i in 0..rows {
            let mut row = a[i * lda..i * lda + k].to_vec();
            if let Some(m) = input_scale {
                for (x, f) in row.iter_mut().zip(m) {
                    *x *= f;
                }
            }
            for (g, src) in row.chunks(size).enumerate() {
                let q = &mut q[..src.len()];
                let (s, z) = quantize_row_asym(src, q);
                let at = i * lda + g * size;
                for (kk, &qi) in q.iter().enumerate() {
                    let code = i32::from(qi);
                    out[at + kk] = s * (code - z) as f32;
                    mag[at + kk] = s * (code + z + 256) as f32;
                }
            }
        }
    }
    (out, mag)
}

/// Runs one case on the reference and on each of `tables`; checks every element of C, and
/// that the padding between rows of a strided C is untouched. The reference and the tolerances
/// are computed once per case (they dominate the cost, the more so under qemu).
fn check(tables: &[Kernels], wt: Wt, c: &Case) {
    let (m, n, k) = (c.m, c.n, c.k);
    let seed = (m * 1_000_003 + n * 1009 + k) as u64;
    let a = values(m.max(1) * c.lda, seed);
    let w = values(n * k, seed + 1);
    let group = c.group.filter(|_| wt == Wt::I8);
    let packed = Packed::new(wt, &w, n, k, group);
    // Half the int8 cases carry input scales, as smoothed files do.
    let factors: Vec<f32> = (0..k).map(|i| [0.25, 1.7, 3.0, 0.6][i % 4]).collect();
    let input_scale = (wt == Wt::I8 && (m + n + k) % 2 == 1).then_some(&factors[..]);
    let (a_eff, a_mag) = effective_a(wt, &a, m, c.lda, k, input_scale, group);
    let bias = values(n, seed + 2);
    let ldr = n + 3;
    let res = values(m.max(1) * ldr, seed + 3);
    let epilogue = match c.epi {
        Epi::None => Epilogue::None,
        Epi::Gelu => Epilogue::Gelu,
        Epi::Residual => Epilogue::Residual { r: &res, ld: ldr },
    };
    let mut scratch = GemmScratch::default();
    let mut run = |t: &Kernels| {
        let mut out = vec![f32::NAN; m.max(1) * c.ldc];
        t.gemm(
            Gemm {
                k,
                a: &a,
                lda: c.lda,
                w: packed.weights(input_scale),
                bias: c.bias.then_some(&bias[..]),
                epilogue,
                c: MatMut::new(&mut out, m, n, c.ldc),
            },
            &mut scratch,
        );
        out
    };
    let want = run(&Kernels::REFERENCE);
    let mut tol = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum_abs: f32 = (0..k)
                .map(|kk| (a_eff[i * c.lda + kk] * packed.effective[j * k + kk]).abs())
                .sum();
            if c.bias {
                sum_abs += bias[j].abs();
            }
            if matches!(c.epi, Epi::Residual) {
                sum_abs += res[i * ldr + j].abs();
            }
            tol[i * n + j] = match (wt, group) {
                (Wt::I8, None) => tolerance::gemm_i8(sum_abs),
                (Wt::I8, Some(size)) => {
                    let mut mag: f32 = (0..k)
                        .map(|kk| a_mag[i * c.lda + kk] * packed.effective[j * k + kk].abs())
                        .sum();
                    mag += sum_abs;
                    tolerance::gemm_i8_grouped(act_groups(k, size), mag)
                }
                _ => tolerance::gemm_f32(k, sum_abs),
            } + if matches!(c.epi, Epi::Gelu) {
                tolerance::gelu(sum_abs)
            } else {
                0.0
            };
        }
    }
    for kernels in tables {
        let got = run(kernels);
        for i in 0..m {
            for j in 0..c.ldc {
                let (g, wv) = (got[i * c.ldc + j], want[i * c.ldc + j]);
                if j >= n {
                    assert!(g.is_nan(), "{} wrote outside C at ({i}, {j})", kernels.isa);
                    continue;
                }
                let tol = tol[i * n + j];
                assert!(
                    tolerance::within(g, wv, tol),
                    "{} ({}, {}) {wt:?} group={group:?} m={m} n={n} k={k} lda={} ldc={} bias={} {:?} at ({i}, {j}): {g} vs {wv} (tol {tol})",
                    kernels.isa,
                    kernels.int8,
                    kernels.bf16,
                    c.lda,
                    c.ldc,
                    c.bias,
                    c.epi
                );
            }
        }
    }
}

/// The tables to test for each weight type: float weights on each SIMD path's table, int8 on
/// every variant (with and without the dot-product extensions); the scalar table is the
/// reference itself. With `BERTH_ISA` set (CI's per-path runs), only that path's tables.
fn cases() -> Vec<(Wt, Vec<Kernels>)> {
    let forced = std::env::var("BERTH_ISA")
        .ok()
        .and_then(|v| berth_kernels::Isa::parse(&v));
    let keep =
        |t: &Kernels| t.isa != berth_kernels::Isa::Scalar && forced.is_none_or(|f| f == t.isa);
    let float: Vec<Kernels> = tables().into_iter().filter(keep).collect();
    let int8: Vec<Kernels> = variants().into_iter().filter(keep).collect();
    vec![
        (Wt::F32, float.clone()),
        (Wt::F16, float),
        (Wt::Bf16, int8.clone()),
        (Wt::I8, int8),
    ]
}

fn int8_tables() -> Vec<Kernels> {
    cases()
        .into_iter()
        .find(|(wt, _)| *wt == Wt::I8)
        .map(|(_, t)| t)
        .unwrap_or_default()
}

fn tables() -> Vec<Kernels> {
    supported_isas()
        .into_iter()
        .map(|i| Kernels::for_isa(i).unwrap())
        .collect()
}

#[test]
fn every_small_shape() {
    for (wt, tables) in cases() {
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
                        group: pick_group(m, n, k),
                    };
                    check(&tables, wt, &case);
                }
            }
        }
    }
}

/// Tile edges (MR 4, 6 and 8, NR 16 and 32) and block edges (KC, MC from the crate, so the test
/// follows the blocking if it changes; K blocks are balanced, so 2 KC + 1 gives three).
#[test]
fn tile_and_block_edges() {
    use berth_kernels::gemm::{KC, MC};
    let ms = [1, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, MC - 1, MC, MC + 1];
    let ns = [15, 16, 17, 31, 32, 33, 63, 64, 65];
    let ks = [1, 31, KC - 1, KC, KC + 1, 2 * KC + 1];
    for (wt, tables) in cases() {
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
                        group: pick_group(m, n, k + idx),
                    };
                    check(&tables, wt, &case);
                }
            }
        }
    }
}

#[test]
fn deep_k() {
    for (wt, tables) in cases() {
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
                    group: [None, Some(64), Some(512)][m % 3],
                };
                check(&tables, wt, &case);
            }
        }
    }
}

/// BERT shapes, compared with the reference: the sizes the engine will call, int8 with
/// activations per row and per group of 64 and 128.
#[test]
fn bert_shapes() {
    for (wt, tables) in cases() {
        for (m, k, n) in [
            (8, 384, 1152),
            (32, 384, 1536),
            (40, 1536, 384),
            (7, 768, 768),
        ] {
            for group in [None, Some(64), Some(128)] {
                let case = Case {
                    m,
                    n,
                    k,
                    lda: k,
                    ldc: n,
                    bias: true,
                    epi: Epi::Gelu,
                    group,
                };
                check(&tables, wt, &case);
                if wt != Wt::I8 {
                    break;
                }
            }
        }
    }
}

/// An epilogue's kind, for messages (its residual's values left out).
fn epilogue_name(e: &Epilogue<'_>) -> &'static str {
    match e {
        Epilogue::None => "no epilogue",
        Epilogue::Gelu => "GELU",
        Epilogue::Residual { .. } => "residual",
    }
}

/// Pools of 1 to `max` threads.
fn pools(max: usize) -> Vec<rayon::ThreadPool> {
    (1..=max)
        .map(|t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect()
}

/// Runs `c = a w^T + bias (+ epilogue)` (`m x n`, A `m x k` at stride `lda`) through `gemm_par`
/// on each pool, one scratch per thread, and asserts that every pool's C equals the first's
/// bit for bit (and that it is finite); `what` names the case.
#[allow(clippy::too_many_arguments)]
fn assert_threads_agree(
    kernels: &Kernels,
    pools: &[rayon::ThreadPool],
    (m, k, n, lda): (usize, usize, usize, usize),
    a: &[f32],
    w: Weights<'_>,
    bias: &[f32],
    epilogue: Epilogue<'_>,
    what: &str,
) {
    let run = |pool: &rayon::ThreadPool| {
        let mut out = vec![f32::NAN; m * n];
        let mut scratch = vec![GemmScratch::default(); pool.current_num_threads()];
        let p = Gemm {
            k,
            a,
            lda,
            w,
            bias: Some(bias),
            epilogue,
            c: MatMut::new(&mut out, m, n, n),
        };
        gemm_par(kernels, p, &mut scratch, pool);
        out
    };
    let one = run(&pools[0]);
    assert!(one.iter().all(|v| v.is_finite()), "{what}: not finite");
    for pool in &pools[1..] {
        let got = run(pool);
        let same = got
            .iter()
            .zip(&one)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same,
            "{} ({} {}) {what} m={m} k={k} n={n}: {} threads differ",
            kernels.isa,
            kernels.int8,
            kernels.bf16,
            pool.current_num_threads()
        );
    }
}

/// Any number of threads gives bit-identical results (each part, of M or of N on a panel
/// boundary, is a GEMM of its own), on every path, for every weight type and epilogue.
#[test]
fn threads_are_bit_identical() {
    let pools = pools(4);
    for (wt, kernels) in cases()
        .into_iter()
        .flat_map(|(wt, ts)| ts.into_iter().map(move |t| (wt, t)))
    {
        // M = 128 and 300 reach the division of M (at least MIN_ROWS_PER_PART rows per thread,
        // small weights); the others divide N.
        // With int8, three of them quantise activations per group of 32.
        for (m, k, n, group) in [
            (1, 7, 1, None),
            (9, 64, 33, Some(32)),
            (13, 300, 200, Some(32)),
            (128, 384, 385, None),
            (300, 40, 70, Some(32)),
        ] {
            let a = values(m * k, 5);
            let w = values(n * k, 6);
            let packed = Packed::new(wt, &w, n, k, group);
            let factors = values(k, 9)
                .iter()
                .map(|v| v.abs() + 0.5)
                .collect::<Vec<_>>();
            let bias = values(n, 7);
            let res = values(m * n, 8);
            for epilogue in [
                Epilogue::None,
                Epilogue::Gelu,
                Epilogue::Residual { r: &res, ld: n },
            ] {
                assert_threads_agree(
                    &kernels,
                    &pools,
                    (m, k, n, k),
                    &a,
                    // Input scales for int8 (ignored by float weights' packing).
                    packed.weights(Some(&factors)),
                    &bias,
                    epilogue,
                    &format!("{wt:?} {}", epilogue_name(&epilogue)),
                );
            }
        }
    }
}

/// Where threads divide N, the int8 and bf16 paths pack A once between them
/// (`Kernels::shared_i8`, `shared_bf16`): the results are those of one thread bit for bit, with
/// A strided and scaled, activations per row and per group, M over several M blocks (260 and
/// 262 rows, weights above `MAX_W_BYTES_FOR_ROWS` so that N is still divided; a last block of
/// 4 rows, and of 6, which AVX-512 VNNI runs grouped as one 8-row tile), fewer micro-panels of
/// A than threads (M = 9 per row), and more; and where A is too small to share
/// (`MIN_SHARED_PACK`, one micro-panel).
#[test]
fn threads_share_one_packing_of_a() {
    let pools = pools(3);
    let mut shared = 0;
    for (wt, kernels) in cases()
        .into_iter()
        .filter(|(wt, _)| matches!(wt, Wt::I8 | Wt::Bf16))
        .flat_map(|(wt, ts)| ts.into_iter().map(move |t| (wt, t)))
    {
        let two_stages = match wt {
            Wt::I8 => kernels.shared_i8.is_some(),
            _ => kernels.shared_bf16.is_some(),
        };
        if !two_stages {
            eprintln!(
                "{} ({} {}): no shared packing",
                kernels.isa, kernels.int8, kernels.bf16
            );
            continue;
        }
        shared += 1;
        // (M, K, N, activation group): the first two divide N by W's size at any M.
        for (m, k, n, group) in [
            (260, 1024, 1056, None),
            (262, 1024, 1056, Some(64)),
            (9, 2048, 130, None),
            (9, 2048, 130, Some(32)),
            (37, 512, 200, None),
            (1, 64, 100, None),
            (20, 96, 100, None),
        ] {
            if wt == Wt::Bf16 && group.is_some() {
                continue;
            }
            let lda = k + 3;
            let a = values(m * lda, 11);
            let packed = Packed::new(wt, &values(n * k, 12), n, k, group);
            let factors: Vec<f32> = values(k, 13).iter().map(|v| v.abs() + 0.5).collect();
            let bias = values(n, 14);
            assert_threads_agree(
                &kernels,
                &pools,
                (m, k, n, lda),
                &a,
                packed.weights(Some(&factors)),
                &bias,
                Epilogue::Gelu,
                &format!("{wt:?} {group:?}"),
            );
        }
    }
    eprintln!("{shared} tables share A's packing");
}

/// int8 sums are exact on every variant: row `i` of A is `(c - z_i) / 32` for codes `c` in
/// `0..=255` that include both 0 and 255 (with one element, 255 and `z_i = 0`), so it quantises
/// exactly to those codes with scale 2^-5 and zero point `z_i`; the weights are integers with
/// power-of-two scales; every sum stays below 2^24. Then every output, without bias or
/// epilogue, is `sum (c - z_i) w * 2^-5 * w_scale` exactly: any error in an i32 sum (the
/// zero-point correction, the offset, a lost group of 4, a saturated pair) shows as a
/// mismatch.
#[test]
fn int8_sums_are_exact() {
    let shapes = (0..=17)
        .flat_map(|m| (0..=17).map(move |n| (m, n, (m * 7 + n * 3) % 18)))
        .chain([
            (8, 33, 4096),
            (9, 65, 1023),
            (257, 31, 20),
            (6, 17, 1025),
            (4, 16, 3),
            // Two blocks of rows, each over two K ranges.
            (257, 17, KC_I8 + 5),
        ]);
    let ints = |len: usize, seed: u64| -> Vec<i8> {
        common::values(len, seed, 127.5)
            .into_iter()
            .map(|v| v.round().clamp(-127.0, 127.0) as i8)
            .collect()
    };
    for (m, n, k) in shapes {
        let seed = (m * 131 + n * 17 + k) as u64;
        // Codes 0..=255, minus the row's zero point.
        let codes: Vec<i32> = ints(m * k, seed)
            .iter()
            .map(|&q| i32::from(q) + 128)
            .collect();
        let mut qa = vec![0i32; m * k];
        for i in 0..m {
            let row = &mut qa[i * k..(i + 1) * k];
            row.copy_from_slice(&codes[i * k..(i + 1) * k]);
            let zero = match k {
                0 => 0,
                1 => {
                    row[0] = 255;
                    0
                }
                _ => {
                    // Both extremes fix the row's range at 255 steps of 2^-5.
                    row[i % k] = 0;
                    row[(i + 1) % k] = 255;
                    (i as i32 * 37) % 256
                }
            };
            for c in row.iter_mut() {
                *c -= zero;
            }
        }
        let a: Vec<f32> = qa.iter().map(|&q| q as f32 / 32.0).collect();
        let qw = ints(n * k, seed + 1);
        let w_scale: Vec<f32> = (0..n).map(|j| 2f32.powi(-(j as i32 % 5))).collect();
        let packed = PackedI8Buf::from_rows(&qw, w_scale.clone(), n, k);
        assert_exact(packed.view(), &a, &qa, &qw, &w_scale, (m, n, k));
    }
}

/// Runs `w` on every int8 table and checks that every output is exactly
/// `sum_k qa qw * 2^-5 * w_scale` (`qa` the codes less the zero point or offset, `m x k`; `qw`
/// the weights, `n x k`).
fn assert_exact(
    w: PackedI8<'_>,
    a: &[f32],
    qa: &[i32],
    qw: &[i8],
    w_scale: &[f32],
    (m, n, k): (usize, usize, usize),
) {
    for kernels in int8_tables() {
        let mut out = vec![f32::NAN; m * n];
        kernels.gemm(
            Gemm {
                k,
                a,
                lda: k,
                w: Weights::I8(w),
                bias: None,
                epilogue: Epilogue::None,
                c: MatMut::new(&mut out, m, n, n),
            },
            &mut GemmScratch::default(),
        );
        for i in 0..m {
            for j in 0..n {
                let sum: i64 = (0..k)
                    .map(|kk| i64::from(qa[i * k + kk]) * i64::from(qw[j * k + kk]))
                    .sum();
                assert!(sum.abs() < 1 << 24);
                let want = sum as f64 / 32.0 * f64::from(w_scale[j]);
                let got = out[i * n + j];
                assert!(
                    f64::from(got) == want,
                    "{} ({}) m={m} n={n} k={k} at ({i}, {j}): {got} vs {want}",
                    kernels.isa,
                    kernels.int8
                );
            }
        }
    }
}

/// Grouped int8 activations are exact too: each group of 8 (or what remains) of row `i` holds
/// codes including 0 and 255 (one element: 255 with zero point 0) around its own zero point, so
/// it quantises to those codes with scale 2^-5; every partial sum is a multiple of 2^-5 below
/// 2^19, exact in f32. A wrong group's scale, zero point or channel sums shows as a mismatch.
#[test]
fn int8_grouped_sums_are_exact() {
    const GROUP: usize = 8;
    let shapes = (0..=17)
        .flat_map(|m| (0..=17).map(move |n| (m, n, (m * 5 + n * 7) % 30)))
        .chain([(9, 65, 300), (6, 17, 257), (257, 31, 20), (8, 33, 96)])
        // Deeper than KC_I8: the K ranges' carries (a last range of 232 and of 7).
        .chain([
            (9, 65, KC_I8 + 232),
            (5, 33, 2 * KC_I8 + 7),
            (257, 9, KC_I8 + 40),
        ]);
    let ints = |len: usize, seed: u64| -> Vec<i8> {
        common::values(len, seed, 127.5)
            .into_iter()
            .map(|v| v.round().clamp(-127.0, 127.0) as i8)
            .collect()
    };
    for (m, n, k) in shapes {
        let seed = (m * 71 + n * 13 + k) as u64;
        let mut qa: Vec<i32> = ints(m * k, seed)
            .iter()
            .map(|&q| i32::from(q) + 128)
            .collect();
        for i in 0..m {
            for (g, group) in qa[i * k..(i + 1) * k].chunks_mut(GROUP).enumerate() {
                let len = group.len();
                let zero = if len == 1 {
                    group[0] = 255;
                    0
                } else {
                    group[i % len] = 0;
                    group[(i + 1) % len] = 255;
                    ((i * 37 + g * 11) % 256) as i32
                };
                for c in group.iter_mut() {
                    *c -= zero;
                }
            }
        }
        let a: Vec<f32> = qa.iter().map(|&q| q as f32 / 32.0).collect();
        let qw = ints(n * k, seed + 1);
        let w_scale: Vec<f32> = (0..n).map(|j| 2f32.powi(-(j as i32 % 3))).collect();
        let packed = PackedI8Buf::from_rows(&qw, w_scale.clone(), n, k);
        let sums = act_group_sums(&packed.q, k, GROUP);
        let w = PackedI8 {
            groups: Some(ActGroups {
                size: GROUP,
                sums: &sums,
            }),
            ..packed.view()
        };
        assert_exact(w, &a, &qa, &qw, &w_scale, (m, n, k));
    }
}

/// The group sums: each is the sum of its channel's weights over its group of K, read back
/// through the packed layout's index.
#[test]
fn act_group_sums_match_rows() {
    use berth_kernels::gemm::PANEL;
    for (n, k, size) in [
        (1, 1, 4),
        (33, 17, 8),
        (64, 384, 64),
        (5, 130, 128),
        (40, 0, 4),
    ] {
        let w = values(n * k, (n + k) as u64);
        let b = PackedI8Buf::quantize(&w, n, k);
        let sums = act_group_sums(&b.q, k, size);
        let groups = act_groups(k, size);
        assert_eq!(sums.len(), n.div_ceil(PANEL) * PANEL * groups);
        for j in 0..n {
            for g in 0..groups {
                let want: i32 = (g * size..((g + 1) * size).min(k))
                    .map(|kk| i32::from(b.q[berth_kernels::gemm::packed_index_i8(j, kk, k)]))
                    .sum();
                let got = sums[(j / PANEL) * PANEL * groups + g * PANEL + j % PANEL];
                assert_eq!(got, want as f32, "n={n} k={k} size={size} ({j}, {g})");
            }
        }
    }
}

/// The run-time packers give what `pack_weights` gives for the same matrix: rows read at a
/// stride, and the transpose of a strided matrix.
#[test]
fn run_time_packers_match_pack_weights() {
    use berth_kernels::gemm::{pack_cols_into, pack_rows_into, packed_len};
    for (n, k, ld) in [
        (0, 3, 5),
        (1, 1, 1),
        (5, 7, 9),
        (33, 17, 40),
        (64, 64, 64),
        (70, 3, 80),
    ] {
        let src = values(n.max(1) * ld.max(k), (n * 100 + k) as u64);
        let rows: Vec<f32> = (0..n)
            .flat_map(|r| src[r * ld..r * ld + k].to_vec())
            .collect();
        let mut out = vec![f32::NAN; packed_len(n, k)];
        pack_rows_into(&src, ld, n, k, &mut out);
        assert_eq!(out, pack_weights(&rows, n, k), "rows n={n} k={k}");
        // Transposed: the source is k rows of n at stride ld (ld >= n).
        let ld_t = ld.max(n);
        let src_t = values(k.max(1) * ld_t, (n * 7 + k) as u64);
        let w: Vec<f32> = (0..n)
            .flat_map(|c| (0..k).map(|j| src_t[j * ld_t + c]).collect::<Vec<_>>())
            .collect();
        let mut out_t = vec![f32::NAN; packed_len(n, k)];
        pack_cols_into(&src_t, ld_t, n, k, &mut out_t);
        assert_eq!(out_t, pack_weights(&w, n, k), "cols n={n} k={k}");
    }
}

/// Every bf16 path computes what `vdpbf16ps` does, bit for bit: per output, over the pairs of
/// K in order, the second bf16 product fused-added into the f32 accumulator, then the first
/// (both exact products of bf16 values), then the bias added once. This scalar emulation is the
/// twin; every SIMD table (AVX-512 BF16, and the widened f32 paths) must equal it exactly on
/// data without denormals, which is also what makes them equal to each other.
///
/// AMX's `tdpbf16ps` is the exception: it rounds its sums its own way, so the AMX table is held
/// to the reference with the f32 tolerance by the other tests instead.
#[test]
fn bf16_paths_match_vdpbf16ps_bit_for_bit() {
    let tables: Vec<Kernels> = cases()
        .into_iter()
        .find(|(wt, _)| *wt == Wt::Bf16)
        .map(|(_, t)| t)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.bf16 != "amx-bf16")
        .collect();
    for (m, n, k) in [
        (1, 1, 1),
        (3, 17, 5),
        (9, 33, 64),
        (17, 70, 301),
        (130, 40, 768),
        (2, 64, 3072),
    ] {
        let seed = (m * 7 + n * 11 + k) as u64;
        let a = values(m * k, seed);
        let w = values(n * k, seed + 1);
        let bias = values(n, seed + 2);
        let packed = pack_weights_bf16(&w, n, k);
        let r = |x: f32| to_bf16(x).to_f32();
        let mut want = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f32;
                for s in 0..k.div_ceil(2) {
                    let pick = |v: &[f32], at: usize| if at < k { r(v[at]) } else { 0.0 };
                    let (a0, a1) = (pick(&a[i * k..], 2 * s), pick(&a[i * k..], 2 * s + 1));
                    let (w0, w1) = (pick(&w[j * k..], 2 * s), pick(&w[j * k..], 2 * s + 1));
                    acc = a1.mul_add(w1, acc);
                    acc = a0.mul_add(w0, acc);
                }
                want[i * n + j] = acc + bias[j];
            }
        }
        for t in &tables {
            let mut out = vec![f32::NAN; m * n];
            t.gemm(
                Gemm {
                    k,
                    a: &a,
                    lda: k,
                    w: Weights::Bf16(&packed),
                    bias: Some(&bias),
                    epilogue: Epilogue::None,
                    c: MatMut::new(&mut out, m, n, n),
                },
                &mut GemmScratch::default(),
            );
            for (e, (g, x)) in out.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    x.to_bits(),
                    "{} ({}) m={m} n={n} k={k} at {e}: {g} vs {x}",
                    t.isa,
                    t.bf16
                );
            }
        }
    }
}

/// `to_bf16` rounds to nearest, ties to even, flushes denormals to a signed zero, and keeps
/// infinities and NaN.
#[test]
fn to_bf16_rounds_to_nearest_even_and_flushes_denormals() {
    let b = |x: f32| to_bf16(x).to_bits();
    assert_eq!(b(1.0), 0x3f80);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
    assert_eq!(b(f32::from_bits(0x3f80_8000)), 0x3f80);
    // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (up).
    assert_eq!(b(f32::from_bits(0x3f81_8000)), 0x3f82);
    assert_eq!(b(f32::from_bits(0x3f80_8001)), 0x3f81);
    assert_eq!(b(f32::MIN_POSITIVE / 2.0), 0x0000);
    assert_eq!(b(-f32::MIN_POSITIVE / 2.0), 0x8000);
    assert_eq!(b(f32::MIN_POSITIVE), 0x0080);
    assert_eq!(b(f32::INFINITY), 0x7f80);
    assert!(to_bf16(f32::NAN).is_nan());
}

/// Re-packing f32 or f16 panels as bf16 gives what packing the row-major values does, for
/// partial panels and odd K too; bf16 weights come back as they are; int8 has none.
#[test]
fn repacking_panels_as_bf16_equals_packing_the_rows() {
    use berth_kernels::gemm::{repack_weights_bf16, unpack_weights};
    for (n, k) in [(1, 1), (5, 3), (32, 64), (33, 7), (70, 130)] {
        let w = values(n * k, (n * 31 + k) as u64);
        let want = pack_weights_bf16(&w, n, k);
        let f32p = pack_weights(&w, n, k);
        let halves: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
        let f16p = pack_weights(&halves, n, k);
        let from_f32 = repack_weights_bf16(Weights::F32(&f32p), n, k).unwrap();
        assert_eq!(from_f32, want, "f32 n={n} k={k}");
        let widened: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
        let from_f16 = repack_weights_bf16(Weights::F16(&f16p), n, k).unwrap();
        assert_eq!(
            from_f16,
            pack_weights_bf16(&widened, n, k),
            "f16 n={n} k={k}"
        );
        assert_eq!(
            repack_weights_bf16(Weights::Bf16(&want), n, k).unwrap(),
            want
        );
        // And back: the bf16 values, row-major.
        let rows: Vec<f32> = w.iter().map(|&x| to_bf16(x).to_f32()).collect();
        assert_eq!(unpack_weights(Weights::Bf16(&want), n, k).unwrap(), rows);
        assert_eq!(unpack_weights(Weights::F32(&f32p), n, k).unwrap(), w);
    }
    let q = PackedI8Buf::quantize(&values(32 * 4, 1), 32, 4);
    assert!(repack_weights_bf16(Weights::I8(q.view()), 32, 4).is_none());
}
