#!/usr/bin/env python3
"""Records what Hugging Face `tokenizers` does with every line of the parity corpus, using the
tokenizer.json of all-MiniLM-L6-v2 configured as sentence-transformers uses it (no padding,
truncation at 256 unless a line says otherwise). Writes fixtures/tokenizer/expected.jsonl, one
object per corpus line:

  {"ids": [...], "type_ids": [...] (pairs only), "offsets": [s0, e0, s1, e1, ...],
   "decoded": decode(ids), "decoded_all": decode(ids, skip_special_tokens=False)}
or {"error": "..."} where Hugging Face raises; and expected-<variant>.jsonl for the other
normaliser settings in VARIANTS, on every third line.

Offsets are converted from Python's character offsets to UTF-8 byte offsets.

    python3 -m venv /tmp/hf && /tmp/hf/bin/pip install tokenizers==0.23.3
    /tmp/hf/bin/python scripts/tokenizer/make_expected.py "$(scripts/fetch-minilm.sh)/tokenizer.json"
"""
import json
import os
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
# $BERTH_TOKENIZER_FIXTURES points the script (and the parity test) at another corpus folder.
OUT = Path(os.environ.get("BERTH_TOKENIZER_FIXTURES", ROOT / "fixtures/tokenizer"))
CORPUS = OUT / "corpus.jsonl"

# Normaliser variants beyond MiniLM's own (uncased) one, each on every third corpus line:
# name -> BertNormalizer settings. The vocabulary stays MiniLM's.
VARIANTS = {
    "cased": dict(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False),
    "strip-only": dict(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False),
}


def byte_offsets(text):
    table = [0]
    for ch in text:
        table.append(table[-1] + len(ch.encode("utf-8")))
    return table


def run(tok, out_path, every):
    n_err = 0
    with CORPUS.open(encoding="utf-8") as src, out_path.open("w", encoding="utf-8") as out:
        for i, line in enumerate(src):
            if i % every:
                continue
            case = json.loads(line)
            tok.enable_truncation(max_length=case.get("max_length", 256), strategy=case.get("truncation", "longest_first"))
            try:
                enc = tok.encode(case["a"], case["b"]) if "b" in case else tok.encode(case["a"])
            except Exception as e:  # Hugging Face raises on impossible truncations.
                out.write(json.dumps({"error": str(e)}) + "\n")
                n_err += 1
                continue
            offsets = []
            tables = [byte_offsets(case["a"]), byte_offsets(case.get("b", ""))]
            for (s, e), seq in zip(enc.offsets, enc.sequence_ids):
                t = tables[seq or 0]
                offsets += [t[s], t[e]]
            rec = {"ids": enc.ids, "offsets": offsets,
                   "decoded": tok.decode(enc.ids), "decoded_all": tok.decode(enc.ids, skip_special_tokens=False)}
            if "b" in case:
                rec["type_ids"] = enc.type_ids
            out.write(json.dumps(rec, ensure_ascii=True) + "\n")
    print(f"tokenizers {tokenizers.__version__}: wrote {out_path} ({n_err} errors)")


def main():
    tok = Tokenizer.from_file(sys.argv[1])
    tok.no_padding()
    run(tok, OUT / "expected.jsonl", 1)
    for name, settings in VARIANTS.items():
        tok.normalizer = tokenizers.normalizers.BertNormalizer(**settings)
        run(tok, OUT / f"expected-{name}.jsonl", 3)


if __name__ == "__main__":
    main()
