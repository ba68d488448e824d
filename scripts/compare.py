#!/usr/bin/env python3
"""Compares two safetensors tensors by cosine per row and max |diff| (pure Python).

    scripts/compare.py A.safetensors:name B.safetensors:name
"""
import math
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from importlib import import_module

read = import_module("make-quickstart-inputs").read_safetensors


def load(spec):
    path, name = spec.rsplit(":", 1)
    dtype, shape, data = read(Path(path))[name]
    assert dtype == "F32", dtype
    return shape, struct.unpack(f"<{len(data) // 4}f", data)


def main():
    (sa, a), (sb, b) = load(sys.argv[1]), load(sys.argv[2])
    assert sa == sb, (sa, sb)
    dim = sa[-1]
    worst = 1.0
    for r in range(len(a) // dim):
        x, y = a[r * dim:(r + 1) * dim], b[r * dim:(r + 1) * dim]
        cos = sum(p * q for p, q in zip(x, y)) / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))
        worst = min(worst, cos)
    diff = max(abs(p - q) for p, q in zip(a, b))
    print(f"{len(a) // dim} rows: min cosine {worst:.7f}, max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
