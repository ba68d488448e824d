#!/usr/bin/env python3
"""berth's tokenizer against Hugging Face `tokenizers` (Python binding) on the same texts, in
one run, single thread unless said otherwise.

Writes the text sets to target/bench-texts (from the committed parity corpus), times Hugging
Face there (encode in a loop; encode_batch single-threaded and with its default thread pool),
runs `cargo bench --bench tokenize`, reads criterion's medians and prints a table, the ratios,
and a JSON line. Needs `tokenizers` (pip install tokenizers==0.23.3) and the MiniLM checkpoint
(scripts/fetch-minilm.sh).

    python3 benches/tokenizer_vs_hf.py [--repeats 15]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ROOT / "target/bench-texts"


def text_sets():
    corpus = [json.loads(l) for l in (ROOT / "fixtures/tokenizer/corpus.jsonl").open(encoding="utf-8")]
    singles = [c["a"] for c in corpus if "b" not in c and "max_length" not in c]
    prose = singles[:1800]  # make_corpus.py writes the standard-library prose first
    long = [" ".join(prose[i:i + 40]) for i in range(0, len(prose), 40)]
    return {"short": prose, "long": long, "mixed": singles}


def time_hf(tok_path, sets, repeats):
    code = r"""
import json, os, statistics, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1]); tok.no_padding(); tok.enable_truncation(256)
out = {}
for name in sys.argv[3].split(","):
    texts = [json.loads(l) for l in open(os.path.join(sys.argv[2], name + ".jsonl"), encoding="utf-8")]
    def run(f):
        f()
        ts = []
        for _ in range(int(sys.argv[4])):
            t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
        return statistics.median(ts)
    out[name] = {"single": run(lambda: [tok.encode(t) for t in texts]), "batch": run(lambda: tok.encode_batch(texts))}
print(json.dumps(out))
"""
    results = {}
    for mode, env in [("1 thread", {"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1"}), ("pool", {})]:
        r = subprocess.run([sys.executable, "-c", code, str(tok_path), str(TEXTS), ",".join(sets), str(repeats)],
                           env={**os.environ, **env}, capture_output=True, text=True, check=True)
        results[mode] = json.loads(r.stdout)
    return results


def criterion_median(group, bench):
    d = ROOT / "target/criterion" / group
    for sub in d.iterdir():
        if sub.name.startswith(bench.replace(" ", "_")) or sub.name.startswith(bench):
            est = json.loads((sub / "new/estimates.json").read_text())
            return est["median"]["point_estimate"] / 1e9
    raise SystemExit(f"no criterion result for {group}/{bench} under {d}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    sets = text_sets()
    TEXTS.mkdir(parents=True, exist_ok=True)
    for name, texts in sets.items():
        with (TEXTS / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps(t) + "\n")
    minilm = subprocess.run([str(ROOT / "scripts/fetch-minilm.sh")], capture_output=True, text=True, check=True).stdout.strip()
    import tokenizers
    hf = time_hf(Path(minilm) / "tokenizer.json", list(sets), args.repeats)
    subprocess.run(["cargo", "bench", "-q", "-p", "berth-benches", "--bench", "tokenize"], cwd=ROOT, check=True,
                   env={**os.environ, "BERTH_MINILM_DIR": minilm, "BERTH_BENCH_TEXTS": str(TEXTS)},
                   stdout=subprocess.DEVNULL)
    rows = []
    print(f"tokenizers {tokenizers.__version__} vs berth, medians; MB = 10^6 bytes")
    print(f"{'set':6} {'texts':>6} {'MB':>6} | {'berth MB/s':>10} {'sent/s':>9} | {'HF single':>9} {'HF batch 1t':>11} {'HF batch pool':>13} | {'x single':>8} {'x batch 1t':>10}")
    for name, texts in sets.items():
        mb = sum(len(t.encode()) for t in texts) / 1e6
        berth = criterion_median("tokenize", f"{name} ({len(texts)} texts)")
        hs, hb, hp = hf["1 thread"][name]["single"], hf["1 thread"][name]["batch"], hf["pool"][name]["batch"]
        row = dict(set=name, texts=len(texts), mb=mb, berth_s=berth, hf_single_s=hs, hf_batch_1t_s=hb, hf_batch_pool_s=hp,
                   ratio_single=hs / berth, ratio_batch_1t=hb / berth)
        rows.append(row)
        print(f"{name:6} {len(texts):>6} {mb:>6.2f} | {mb / berth:>10.1f} {len(texts) / berth:>9.0f} | {mb / hs:>9.1f} {mb / hb:>11.1f} {mb / hp:>13.1f} | {hs / berth:>8.2f} {hb / berth:>10.2f}")
    print(json.dumps({"tokenizers": tokenizers.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
