#!/usr/bin/env python3
"""Prints the GEMM tables from criterion's saved medians (run `cargo bench -p berth-benches
--bench gemm` first): per shape, GFLOP/s (GOP/s for int8) of every berth weight type and path,
the fraction of the register-only peak measured in the same run (FMA for f32 and f16, VNNI for
int8, vdpbf16ps for bf16, the tile products for AMX), berth f32's ratio to the gemm crate,
f16's and int8's ratio to berth f32 on the same path, two threads against one, and small M
with the weights streamed from memory. `--json` prints the same as JSON."""
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


def groups(prefix):
    """{(m, k, n): {implementation: G/s}} for the groups named `prefix M=<m>`."""
    rows = {}
    for group in sorted(ROOT.glob(f"{prefix} M=*")):
        m = int(group.name.split("=")[1])
        for impl in group.iterdir():
            if not impl.is_dir() or impl.name == "report":
                continue
            for shape in impl.iterdir():
                if (shape / "new/estimates.json").exists():
                    k, n = map(int, re.findall(r"\d+", shape.name))
                    rows.setdefault((m, k, n), {})[impl.name] = median(shape)
    return rows


def main():
    peak = {}
    if (ROOT / "peak").exists():
        for d in (ROOT / "peak").iterdir():
            if (d / "new/estimates.json").exists():
                peak[d.name] = median(d)
    fma = {isa: next((v for k, v in peak.items() if k.startswith("fma") and isa in k), None)
           for isa in ("avx512", "avx2")}
    vnni = next((v for k, v in peak.items() if k.startswith("vnni") and "avx512" in k), None)
    dpbf16 = next((v for k, v in peak.items() if k.startswith("dpbf16")), None)
    print("peak (register-only, 1 thread): " +
          ", ".join(f"{k} {v:.1f} G/s" for k, v in sorted(peak.items())))
    rows = groups("gemm")
    out = []
    f = lambda v: f"{v:6.1f}" if v else "     -"
    p = lambda v: f"{100 * v:4.0f}%" if v else "    -"
    r2 = lambda v: f"{v:5.2f}" if v else "    -"
    print()
    print(f"{'M':>4} {'K':>5} {'N':>5} | {'f32':>6} {'peak':>5} {'f16':>6} {'i8':>6} {'peak':>5} | "
          f"{'f32/2':>6} {'f16/2':>6} {'i8/2':>6} | {'gemm':>6} {'mm':>6} | "
          f"{'xgemm':>5} {'f16x':>5} {'i8x':>5}")
    print(f"{'':17}| {'avx512 (VNNI for int8)':<34}| {'avx2 (vpmaddubsw int8)':<20} | {'peers, f32':<13} | ratios (avx512)")
    for (m, k, n), r in sorted(rows.items()):
        a5 = {wt: r.get(f"berth {wt} avx512") for wt in ("f32", "f16")}
        a5["i8"] = r.get("berth i8 avx512-vnni")
        a5["bf16"] = r.get("berth bf16 avx512 avx512-bf16")
        a2 = {wt: r.get(f"berth {wt} avx2") for wt in ("f32", "f16")}
        a2["i8"] = r.get("berth i8 avx2")
        g, mm = r.get("gemm crate"), r.get("matrixmultiply")
        row = dict(m=m, k=k, n=n, avx512=a5, avx2=a2, gemm=g, matrixmultiply=mm,
                   f32_frac=a5["f32"] / fma["avx512"] if a5["f32"] and fma["avx512"] else None,
                   i8_frac=a5["i8"] / vnni if a5["i8"] and vnni else None,
                   bf16_frac=a5["bf16"] / dpbf16 if a5["bf16"] and dpbf16 else None,
                   bf16_over_f32=a5["bf16"] / a5["f32"] if a5["bf16"] and a5["f32"] else None,
                   ratio_gemm=a5["f32"] / g if a5["f32"] and g else None,
                   f16_over_f32=a5["f16"] / a5["f32"] if a5["f16"] and a5["f32"] else None,
                   i8_over_f32=a5["i8"] / a5["f32"] if a5["i8"] and a5["f32"] else None)
        out.append(row)
        print(f"{m:>4} {k:>5} {n:>5} | {f(a5['f32'])} {p(row['f32_frac'])} {f(a5['f16'])} "
              f"{f(a5['i8'])} {p(row['i8_frac'])} | {f(a2['f32'])} {f(a2['f16'])} {f(a2['i8'])} | "
              f"{f(g)} {f(mm)} | {r2(row['ratio_gemm'])} {r2(row['f16_over_f32'])} "
              f"{r2(row['i8_over_f32'])}")
    bf = [row for row in out if row["avx512"].get("bf16")]
    if bf:
        print()
        print("bf16 (vdpbf16ps, AVX-512 BF16), 1 thread:")
        print(f"{'M':>4} {'K':>5} {'N':>5} | {'bf16':>6} {'peak':>5} {'x f32':>6}")
        for row in bf:
            print(f"{row['m']:>4} {row['k']:>5} {row['n']:>5} | {f(row['avx512']['bf16'])} "
                  f"{p(row['bf16_frac'])} {r2(row['bf16_over_f32'])}")
    amx_i8 = peak.get("amx i8")
    amx_bf16 = peak.get("amx bf16")
    tiles = [(key, r) for key, r in sorted(rows.items())
             if r.get("berth i8 amx-int8") or r.get("berth bf16 amx amx-bf16")]
    if tiles:
        print()
        print("AMX tiles (as dispatched: int8 below AMX_MIN_ROWS_I8 rows runs on VNNI), 1 thread:")
        print(f"{'M':>4} {'K':>5} {'N':>5} | {'i8':>6} {'peak':>5} {'xVNNI':>6} | "
              f"{'bf16':>6} {'peak':>5} {'xBF16':>6}")
        for (m, k, n), r in tiles:
            ti, tb = r.get("berth i8 amx-int8"), r.get("berth bf16 amx amx-bf16")
            vi, vb = r.get("berth i8 avx512-vnni"), r.get("berth bf16 avx512 avx512-bf16")
            ti_frac = ti / amx_i8 if ti and amx_i8 else None
            tb_frac = tb / amx_bf16 if tb and amx_bf16 else None
            print(f"{m:>4} {k:>5} {n:>5} | {f(ti)} {p(ti_frac)} "
                  f"{r2(ti / vi if ti and vi else None)} | {f(tb)} "
                  f"{p(tb_frac)} {r2(tb / vb if tb and vb else None)}")
    threads = groups("gemm threads")
    if threads:
        print()
        print(f"{'M':>4} {'K':>5} {'N':>5} | {'f32 1t':>7} {'2t':>7} {'x':>5} | {'i8 1t':>7} {'2t':>7} {'x':>5}")
        for (m, k, n), r in sorted(threads.items()):
            cells = []
            for wt in ("f32", "i8"):
                one, two = r.get(f"{wt} 1 threads"), r.get(f"{wt} 2 threads")
                cells.append(f"{f(one):>7} {f(two):>7} {r2(two / one if one and two else None)}")
            print(f"{m:>4} {k:>5} {n:>5} | " + " | ".join(cells))
    streamed = groups("gemm streamed")
    if streamed:
        print()
        print("weights streamed from memory (copies spanning 4x L3), best path:")
        print(f"{'M':>4} {'K':>5} {'N':>5} | {'f32':>6} {'f16':>6} {'i8':>6} | {'f16x':>5} {'i8x':>5}")
        for (m, k, n), r in sorted(streamed.items()):
            a, h, q = r.get("f32"), r.get("f16"), r.get("i8")
            print(f"{m:>4} {k:>5} {n:>5} | {f(a)} {f(h)} {f(q)} | "
                  f"{r2(h / a if a and h else None)} {r2(q / a if a and q else None)}")
    if "--json" in sys.argv:
        print(json.dumps({"peak": peak, "rows": out, "threads": [
            dict(m=m, k=k, n=n, **r) for (m, k, n), r in sorted(threads.items())],
            "streamed": [dict(m=m, k=k, n=n, **r) for (m, k, n), r in sorted(streamed.items())]}))


if __name__ == "__main__":
    main()
