#!/usr/bin/env python3
"""Writes seeds for the `tokenizer` fuzz target from the parity corpus: every 7th line as
[flags = BERT uncased, limits = max length 63 longest_first] + text (+ 0xFE + second text).

    python3 scripts/tokenizer/fuzz_seeds.py fuzz/corpus/tokenizer
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    lines = (ROOT / "fixtures/tokenizer/corpus.jsonl").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines[::7]):
        case = json.loads(line)
        data = bytes([0x1F, 0xFF]) + case["a"].encode()
        if "b" in case:
            data += b"\xfe" + case["b"].encode()
        (out / f"seed{i:05d}").write_bytes(data)
    print(f"wrote {len(lines[::7])} seeds to {out}")


if __name__ == "__main__":
    main()
