#!/usr/bin/env python3
"""Writes fixtures/quickstart/inputs.safetensors: three of the reference MiniLM sentences
(ids from fixtures/reference/minilm/tokens.json), right-padded to the longest, as int64
input_ids / attention_mask / token_type_ids, plus their golden sentence embeddings. Pure
Python (json + struct), so it runs anywhere the quickstart does."""
import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PICK = [0, 1, 9]  # a short sentence, a longer one, one with accents


def read_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], raw[base + a:base + b])
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    tokens = json.loads((ROOT / "fixtures/reference/minilm/tokens.json").read_text())
    rows = [tokens[i]["input_ids"] for i in PICK]
    width = max(map(len, rows))
    ids, mask = [], []
    for r in rows:
        ids += r + [0] * (width - len(r))
        mask += [1] * len(r) + [0] * (width - len(r))
    q = lambda v: struct.pack(f"<{len(v)}q", *v)
    emb = read_safetensors(ROOT / "fixtures/reference/minilm/embeddings.safetensors")["embeddings"]
    dim = emb[1][1]
    golden = b"".join(emb[2][i * dim * 4:(i + 1) * dim * 4] for i in PICK)
    out = ROOT / "fixtures/quickstart/inputs.safetensors"
    write_safetensors(out, {
        "input_ids": ("I64", [len(rows), width], q(ids)),
        "attention_mask": ("I64", [len(rows), width], q(mask)),
        "token_type_ids": ("I64", [len(rows), width], q([0] * len(ids))),
        "golden_sentence_embedding": ("F32", [len(rows), dim], golden),
    })
    print(f"wrote {out}: sentences {PICK}, padded to {width}")


if __name__ == "__main__":
    main()
