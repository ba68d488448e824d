"""Summarises run.sh's `tile order` runs in its log: for each GEMM, the best of the runs with
A in rows (`amx-int8`, `amx-bf16`) and in tile order (`amx-tileord`), and their ratio; then
the geometric mean of the ratios.

    python3 tile_order.py LOG
"""
import math
import re
import sys
from collections import defaultdict

best = defaultdict(dict)
section = False
for line in open(sys.argv[1]):
    if line.startswith("=== "):
        section = line.startswith("=== tile order")
        continue
    f = line.split()
    if not section or len(f) != 8 or not f[4].startswith("amx"):
        continue
    layout = "tiles" if f[4] == "amx-tileord" else "rows"
    us = float(f[5])
    key = tuple(f[:4])
    best[key][layout] = min(us, best[key].get(layout, math.inf))
ratios = []
print("dtype   M     K     N   rows_us  tiles_us  rows/tiles")
for key, b in best.items():
    if "rows" in b and "tiles" in b:
        r = b["rows"] / b["tiles"]
        ratios.append(r)
        print(f"{key[0]:<6} {key[1]:>3} {key[2]:>5} {key[3]:>5} {b['rows']:9.1f} {b['tiles']:9.1f} {r:8.2f}")
if ratios:
    g = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f"tile order against rows: geometric mean {g:.3f}x faster "
          f"({min(ratios):.2f}-{max(ratios):.2f}), {len(ratios)} GEMMs")
