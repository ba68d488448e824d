"""Cosines between the embeddings scripts/amx-check/run.sh wrote into DIR ({f32,bf16,int8,
int8att}-{amx,avx512}.npy; int8att: int8 with attention in bf16): each against f32 on AVX-512,
and AMX against AVX-512 for the same dtype.

    python3 cosines.py DIR
"""
import sys

import numpy as np
d = sys.argv[1]
def load(n): return np.load(f"{d}/{n}.npy").astype(np.float64)
def cos(a, b):
    num = (a * b).sum(1); den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    ok = den > 0
    return num[ok] / den[ok]
ref = load("f32-avx512")
for n in ["f32-amx", "bf16-avx512", "bf16-amx", "int8-avx512", "int8-amx", "int8att-avx512",
          "int8att-amx"]:
    c = cos(load(n), ref)
    print(f"{n:12} vs f32-avx512: min cos {c.min():.7f} mean {c.mean():.7f}")
for t in ["bf16", "int8", "int8att"]:
    a, b = load(f"{t}-amx"), load(f"{t}-avx512")
    c = cos(a, b)
    print(f"{t} amx vs avx512: min cos {c.min():.9f}, max abs diff {np.abs(a-b).max():.3g}, identical {np.array_equal(a, b)}")
