#!/usr/bin/env python3
"""Prints the GEMM table from criterion's saved medians (run `cargo bench -p berth-benches
--bench gemm` first): GFLOP/s per implementation and shape, fraction of the measured FMA peak,
and berth's ratio to the gemm crate. `--json` prints the same as JSON."""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "target/criterion"


def median(path):
    est = json.loads((path / "new/estimates.json").read_text())
    bench = json.loads((path / "new/benchmark.json").read_text())
    elems = bench["throughput"]["Elements"]
    return elems / est["median"]["point_estimate"]  # elements per ns = G elements per s


def main():
    peak = {}
    for d in (ROOT / "peak").iterdir():
        if (d / "new/estimates.json").exists():
            peak[d.name] = median(d)
    rows = {}
    for group in sorted(ROOT.glob("gemm_f32 M=*")):
        m = int(group.name.split("=")[1])
        for impl in group.iterdir():
            if not impl.is_dir() or impl.name == "report":
                continue
            for shape in impl.iterdir():
                if (shape / "new/estimates.json").exists():
                    k, n = map(int, re.findall(r"\d+", shape.name))
                    rows.setdefault((m, k, n), {})[impl.name] = median(shape)
    avx512_peak = next((v for k, v in peak.items() if "avx512" in k), None)
    avx2_peak = next((v for k, v in peak.items() if "avx2" in k), None)
    out = []
    print(f"peak (register-only FMA, 1 thread): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in sorted(peak.items())))
    print(f"{'M':>4} {'K':>5} {'N':>5} | {'avx512':>7} {'%peak':>6} | {'avx2':>7} {'%peak':>6} | {'gemm':>7} {'mm':>7} | {'x gemm':>6}")
    for (m, k, n), r in sorted(rows.items()):
        a5 = r.get("berth avx512")
        a2 = r.get("berth avx2")
        g = r.get("gemm crate")
        mm = r.get("matrixmultiply")
        best = a5 or a2
        row = dict(m=m, k=k, n=n, avx512=a5, avx2=a2, gemm=g, matrixmultiply=mm,
                   avx512_frac=a5 / avx512_peak if a5 and avx512_peak else None,
                   avx2_frac=a2 / avx2_peak if a2 and avx2_peak else None,
                   ratio_gemm=best / g if best and g else None)
        out.append(row)
        f = lambda v: f"{v:7.1f}" if v else "      -"
        p = lambda v: f"{100 * v:5.0f}%" if v else "     -"
        print(f"{m:>4} {k:>5} {n:>5} | {f(a5)} {p(row['avx512_frac'])} | {f(a2)} {p(row['avx2_frac'])} | {f(g)} {f(mm)} | {row['ratio_gemm']:6.2f}")
    if "--json" in sys.argv:
        print(json.dumps({"peak": peak, "rows": out}))


if __name__ == "__main__":
    main()
