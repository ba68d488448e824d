#!/usr/bin/env python3
"""Fits the rational erf of the GELU kernels (kernels/src/simd/mod.rs, `gelu`).

    erf(v / sqrt 2) ~= w P(w^2) / Q(w^2),   w = v clamped to [-C sqrt 2, C sqrt 2],   C = 3.92

with P of degree 6 and Q of degree 4 (Q(0) = 1). erf(3.92) = 1 - 2.8e-8, which rounds to 1 in
f32, so the clamp costs nothing. The fit is made in x = v / sqrt 2 on [0, C] for erf(x) / x as a
function of x^2, by linearised least squares (P - f Q = 0, reweighted by 1 / Q) with Lawson's
weight updates towards the minimax of erf's relative error; the coefficients are then rescaled
to v and rounded to f32. Prints them as Rust literals, the fit's relative error in f64, and the
GELU's worst absolute error on [-10, 10] (step 1e-4) with f32 arithmetic simulated (each
operation rounded to f32; a fused multiply-add rounded once), against tolerance::gelu.

Needs numpy and scipy (for scipy.special.erf):

    python3 -m venv /tmp/fit && /tmp/fit/bin/pip install numpy scipy
    /tmp/fit/bin/python scripts/fit-gelu.py
"""

import numpy as np
from scipy.special import erf

C = 3.92
NP, NQ = 6, 4


def fit(iters=200):
    x = C * (1 - np.cos(np.linspace(0, np.pi, 4000))) / 2
    x = x[x > 1e-6]
    u = x * x
    f = erf(x) / x
    weights = np.ones_like(x)
    q_prev = np.ones_like(x)
    for _ in range(iters):
        cols = [u**i for i in range(NP + 1)] + [-f * u**i for i in range(1, NQ + 1)]
        a = np.vstack(cols).T
        scale = weights / (q_prev * f)
        sol, *_ = np.linalg.lstsq(a * scale[:, None], f * scale, rcond=None)
        p = sol[: NP + 1]
        q = np.concatenate([[1.0], sol[NP + 1 :]])
        q_prev = np.polyval(q[::-1], u)
        err = (np.polyval(p[::-1], u) / q_prev - f) / f
        weights = weights * (np.abs(err) / np.abs(err).max()) ** 0.3 + 1e-12
        weights /= weights.max()
    return p, q, np.abs(err).max()


def r32(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def fma32(a, b, c):
    # The product of two f32 values is exact in f64; the sum then rounds twice (to f64, to
    # f32), which differs from one rounding only in rare ties: good enough for an estimate.
    return r32(a * b + c)


def horner32(coeffs, u):
    acc = np.full_like(u, coeffs[-1])
    for k in coeffs[-2::-1]:
        acc = fma32(acc, u, k)
    return acc


def gelu32(v, p, q, clamp):
    v = r32(v)
    w = np.minimum(np.maximum(v, -clamp), clamp)
    u = r32(w * w)
    e = r32(r32(w * horner32(p, u)) / horner32(q, u))
    h = r32(0.5 * v)
    return fma32(h, e, h)


def main():
    p, q, rel = fit()
    s = 1 / np.sqrt(2)
    # erf(v / sqrt 2) = (v / sqrt 2) P_x(v^2 / 2) / Q_x(v^2 / 2)
    pv = r32([p[i] * s * 0.5**i for i in range(NP + 1)])
    qv = r32([q[i] * 0.5**i for i in range(NQ + 1)])
    clamp = r32(C * np.sqrt(2))
    print(f"fit: max relative error of erf in f64 {rel:.3g}")
    print(f"GELU_CLAMP = {np.float32(clamp)!r}")
    print("GELU_P =", [str(np.float32(c)) for c in pv])
    print("GELU_Q =", [str(np.float32(c)) for c in qv])
    v = np.arange(-100_000, 100_001) * 1e-4
    want = 0.5 * v * (1 + erf(v / np.sqrt(2)))
    err = np.abs(gelu32(v, pv, qv, clamp) - want)
    tol = 3e-7 * (np.abs(v) + 1)
    i, j = err.argmax(), (err / tol).argmax()
    print(f"GELU, f32 simulated: max abs error {err[i]:.3g} at {v[i]:.4f}; "
          f"max error / tolerance::gelu {err[j] / tol[j]:.3f} at {v[j]:.4f}")


if __name__ == "__main__":
    main()
