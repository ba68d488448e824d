"""One line per record of the `berth bench --json` files given: workload, dtype, path,
kernel, attention, activation groups, threads, median and min (ms).

    python3 table.py FILE...
"""
import json
import sys

for path in sys.argv[1:]:
    try:
        records = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"{path}: {e}")
        continue
    for r in records:
        kernel = r.get("int8_kernel") if r.get("dtype") == "int8" else r.get("bf16_kernel")
        print(f"{path.rsplit('/', 1)[-1]:22} {r['workload']:3} {r['dtype']:5} {r['isa']:7} "
              f"{kernel or '-':12} att={r.get('attention')} groups={r.get('act_groups')} "
              f"t={r['threads']} median {r['median_ms']:.2f} min {r['min_ms']:.2f}")
