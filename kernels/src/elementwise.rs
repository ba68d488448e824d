//! Element-wise kernels: LayerNorm with fused residual add, softmax, GELU (erf form).
//!
//! Each has a scalar reference twin (`*_ref`, f64 inside where that is the truth) and one
//! generic SIMD body over [`crate::simd::Simd`], instantiated per ISA in [`crate::dispatch`].
//! `docs/KERNELS.md` states each contract; `crate::tolerance` the error allowed against the twin.

use crate::simd::{self, Simd};

/// LayerNorm over the rows of `x` (row length `gamma.len()`), after adding `residual` when
/// given: `x[r] = (v - mean(v)) / sqrt(var(v) + eps) * gamma + beta` with `v = x[r] + res[r]`
/// and the biased variance, as PyTorch's `nn.LayerNorm`.
#[derive(Debug)]
pub struct LayerNormRows<'a> {
    pub x: &'a mut [f32],
    pub residual: Option<&'a [f32]>,
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

impl LayerNormRows<'_> {
    fn check(&self) -> usize {
        let cols = self.gamma.len();
        assert_eq!(
            self.beta.len(),
            cols,
            "layer_norm: gamma and beta lengths differ"
        );
        if cols > 0 {
            assert_eq!(self.x.len() % cols, 0, "layer_norm: x is not whole rows");
        } else {
            assert!(self.x.is_empty(), "layer_norm: rows of length 0 with data");
        }
        if let Some(r) = self.residual {
            assert_eq!(r.len(), self.x.len(), "layer_norm: residual length differs");
        }
        cols
    }
}

/// The reference LayerNorm: f64 accumulation, two passes.
pub fn layer_norm_ref(p: LayerNormRows<'_>) {
    let cols = p.check();
    if cols == 0 {
        return;
    }
    for (r, row) in p.x.chunks_exact_mut(cols).enumerate() {
        if let Some(res) = p.residual {
            for (v, a) in row.iter_mut().zip(&res[r * cols..(r + 1) * cols]) {
                *v += a;
            }
        }
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / cols as f64;
        let var = row
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / cols as f64;
        let inv = 1.0 / (var + f64::from(p.eps)).sqrt();
        for ((v, g), b) in row.iter_mut().zip(p.gamma).zip(p.beta) {
            *v = ((f64::from(*v) - mean) * inv * f64::from(*g) + f64::from(*b)) as f32;
        }
    }
}

/// The reference softmax: f64 throughout, max subtracted first.
pub fn softmax_ref(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: f64 = x
        .iter()
        .map(|&v| (f64::from(v) - f64::from(max)).exp())
        .sum();
    for v in x.iter_mut() {
        *v = ((f64::from(*v) - f64::from(max)).exp() / e) as f32;
    }
}

/// The reference GELU, `x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))` in f64 (libm's erf).
pub fn gelu_ref(x: &mut [f32]) {
    for v in x {
        let z = f64::from(*v);
        *v = (0.5 * z * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))) as f32;
    }
}

/// LayerNorm, generic SIMD body: per row, one pass adds the residual and sums, one sums the
/// squared deviations, one writes.
#[inline(always)]
pub(crate) unsafe fn layer_norm<S: Simd>(p: LayerNormRows<'_>) {
    let cols = p.check();
    if cols == 0 {
        return;
    }
    let l = S::LANES;
    for (r, row) in p.x.chunks_exact_mut(cols).enumerate() {
        // SAFETY: every pointer comes from a chunk of exactly LANES elements
        // or goes through the padded partial helpers; the caller runs on S's ISA.
        unsafe {
            let mut sum = S::splat(0.0);
            if let Some(res) = p.residual {
                let res = &res[r * cols..(r + 1) * cols];
                let mut xs = row.chunks_exact_mut(l);
                let mut rs = res.chunks_exact(l);
                for (xc, rc) in (&mut xs).zip(&mut rs) {
                    let v = S::add(S::load(xc.as_ptr()), S::load(rc.as_ptr()));
                    S::store(xc.as_mut_ptr(), v);
                    sum = S::add(sum, v);
                }
                let (xt, rt) = (xs.into_remainder(), rs.remainder());
                if !xt.is_empty() {
                    let v = S::add(
                        simd::load_partial::<S>(xt, 0.0),
                        simd::load_partial::<S>(rt, 0.0),
                    );
                    simd::store_partial::<S>(xt, v);
                    sum = S::add(sum, v);
                }
            } else {
                let mut xs = row.chunks_exact(l);
                for xc in &mut xs {
                    sum = S::add(sum, S::load(xc.as_ptr()));
                }
                if !xs.remainder().is_empty() {
                    sum = S::add(sum, simd::load_partial::<S>(xs.remainder(), 0.0));
                }
            }
            let mean = S::reduce_add(sum) / cols as f32;
            let m = S::splat(mean);
            let mut sq = S::splat(0.0);
            let mut xs = row.chunks_exact(l);
            for xc in &mut xs {
                let d = S::sub(S::load(xc.as_ptr()), m);
                sq = S::fma(d, d, sq);
            }
            if !xs.remainder().is_empty() {
                // Pad with the mean so that padded lanes add nothing.
                let d = S::sub(simd::load_partial::<S>(xs.remainder(), mean), m);
                sq = S::fma(d, d, sq);
            }
            let inv = S::splat(1.0 / (S::reduce_add(sq) / cols as f32 + p.eps).sqrt());
            let mut xs = row.chunks_exact_mut(l);
            let mut gs = p.gamma.chunks_exact(l);
            let mut bs = p.beta.chunks_exact(l);
            for ((xc, gc), bc) in (&mut xs).zip(&mut gs).zip(&mut bs) {
                let d = S::mul(S::sub(S::load(xc.as_ptr()), m), inv);
                S::store(
                    xc.as_mut_ptr(),
                    S::fma(d, S::load(gc.as_ptr()), S::load(bc.as_ptr())),
                );
            }
            let xt = xs.into_remainder();
            if !xt.is_empty() {
                let d = S::mul(S::sub(simd::load_partial::<S>(xt, 0.0), m), inv);
                let g = simd::load_partial::<S>(gs.remainder(), 0.0);
                let b = simd::load_partial::<S>(bs.remainder(), 0.0);
                simd::store_partial::<S>(xt, S::fma(d, g, b));
            }
        }
    }
}

/// Softmax, generic SIMD body: max, then `e^(x - max)` stored and summed, then scaled.
#[inline(always)]
pub(crate) unsafe fn softmax<S: Simd>(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let l = S::LANES;
    // SAFETY: chunks of exactly LANES elements or the padded partial helpers; the
    // caller runs on S's ISA.
    unsafe {
        let mut mx = S::splat(f32::NEG_INFINITY);
        let mut xs = x.chunks_exact(l);
        for c in &mut xs {
            mx = S::max(mx, S::load(c.as_ptr()));
        }
        if !xs.remainder().is_empty() {
            mx = S::max(
                mx,
                simd::load_partial::<S>(xs.remainder(), f32::NEG_INFINITY),
            );
        }
        let m = S::splat(S::reduce_max(mx));
        let mut sum = S::splat(0.0);
        let mut xs = x.chunks_exact_mut(l);
        for c in &mut xs {
            let e = simd::exp::<S>(S::sub(S::load(c.as_ptr()), m));
            S::store(c.as_mut_ptr(), e);
            sum = S::add(sum, e);
        }
        let tail = xs.into_remainder();
        if !tail.is_empty() {
            // Padded lanes are -inf, whose exponential is 0.
            let e = simd::exp::<S>(S::sub(simd::load_partial::<S>(tail, f32::NEG_INFINITY), m));
            simd::store_partial::<S>(tail, e);
            sum = S::add(sum, e);
        }
        let inv = S::splat(1.0 / S::reduce_add(sum));
        simd::map_in_place::<S>(x, &Scale::<S>(inv));
    }
}

/// Multiplies every lane by a constant.
struct Scale<S: Simd>(S::F);

impl<S: Simd> simd::Map<S> for Scale<S> {
    #[inline(always)]
    unsafe fn apply(&self, v: S::F) -> S::F {
        // SAFETY: the caller runs on S's ISA.
        unsafe { S::mul(v, self.0) }
    }
}

/// GELU (erf form) of every lane.
pub(crate) struct Gelu;

impl<S: Simd> simd::Map<S> for Gelu {
    #[inline(always)]
    unsafe fn apply(&self, v: S::F) -> S::F {
        // SAFETY: the caller runs on S's ISA.
        unsafe { simd::gelu::<S>(v) }
    }
}

/// GELU (erf form), generic SIMD body: `0.5 x (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub(crate) unsafe fn gelu<S: Simd>(x: &mut [f32]) {
    // SAFETY: the caller runs on S's ISA.
    unsafe { simd::map_in_place::<S>(x, &Gelu) }
}
