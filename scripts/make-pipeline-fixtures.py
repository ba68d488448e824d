#!/usr/bin/env python3
"""Builds fixtures/pipelines: what Hugging Face transformers' pipelines answer on the tiny task
models of fixtures/reference/tiny, each given a small vocabulary, so that berth's task methods
(classify, tag, answer, fill_mask) can be held against them.

    PYTHONPATH=<transformers 4.57.1> python scripts/make-pipeline-fixtures.py \
        --vocab <all-MiniLM-L6-v2>/vocab.txt

transformers 4.57.1 is used because the question-answering pipeline was removed in 5.x (the
goldens in fixtures/reference came from 5.24; the model code is the same). scripts/update-
fixtures.sh pipelines sets it up. The tiny models' weights stay in fixtures/reference/tiny; each
task folder here holds the config (with readable labels), the tokenizer files, and
expected.json. Offsets in expected.json are byte offsets into the UTF-8 input (the pipelines
count characters; this script converts), because berth reports bytes.
"""

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertTokenizerFast,
    pipeline,
)

ROOT = Path(__file__).resolve().parent.parent
VOCAB_SIZE = 512

# Inputs none of berth's other fixtures use: mixed case, punctuation, accents (stripped by the
# lowercasing normaliser), CJK and emoji ([UNK]), long words the small vocabulary spells out
# letter by letter, and an empty text.
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "John Smith moved from Paris to New York in 1998, didn't he?",
    "Ärzte in Zürich sagen: naïve café owners were there!",
    "東京 is a city; 🙂 emoji and unbelievable hyphen-ated words-like-this.",
    "a",
    "",
    "She said: \"It's over,\" and left at 10:30 p.m. for the station.",
    "Microsoft Corporation and the University of Cambridge work together on machine translation.",
]
PAIRS = [
    ("How old is the universe?", "The universe is about 13.8 billion years old."),
    ("Where do pandas live?", "Pandas live in the mountains of central China."),
    ("What is the capital of France?", "Bananas are yellow and rich in potassium."),
    ("", "An empty query."),
]
MASK_TEXTS = [
    "The capital of France is [MASK].",
    "[MASK] quick brown fox jumps over the lazy dog.",
    "He bought a [MASK] and a [MASK] at the market.",
    "Ärzte sagen [MASK]!",
]
CONTEXT = (
    "The Amazon rainforest covers much of the Amazon basin of South America. This basin "
    "encompasses seven million square kilometres, of which five and a half million square "
    "kilometres are covered by the rainforest. The region includes territory belonging to nine "
    "nations. The majority of the forest is contained within Brazil, with 60% of the "
    "rainforest, followed by Peru with 13%, Colombia with 10%, and with minor amounts in "
    "Venezuela, Ecuador, Bolivia, Guyana, Suriname and French Guiana. States or departments in "
    "four nations contain \"Amazonas\" in their names. The Amazon represents over half of the "
    "planet's remaining rainforests, and comprises the largest and most biodiverse tract of "
    "tropical rainforest in the world, with an estimated 390 billion individual trees divided "
    "into 16,000 species. Naïve visitors often underestimate its size."
)
QA = [
    # (question, context, pipeline options)
    ("Which country holds most of the forest?", CONTEXT, {}),
    ("How many trees are there?", CONTEXT, {"top_k": 3}),
    ("How many nations?", CONTEXT, {"max_seq_len": 64, "doc_stride": 16, "top_k": 5}),
    ("What covers the basin?", CONTEXT, {"max_seq_len": 48, "doc_stride": 20, "max_answer_len": 4, "top_k": 2}),
    ("Who?", "Short context: Marie Curie won two Nobel prizes.", {"top_k": 4}),
    ("Is there an answer?", CONTEXT, {"handle_impossible_answer": True, "top_k": 3}),
]
TOKEN_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SEQUENCE_LABELS = ["negative", "neutral", "positive"]


def small_vocab(full):
    """[PAD], [unused0..98], [UNK] [CLS] [SEP] [MASK] at BERT's ids, then the ASCII single
    characters and their ## forms, then the most frequent whole words of the full vocabulary
    (bert-base-uncased's order is roughly by frequency) until VOCAB_SIZE."""
    vocab = full[:104]
    assert vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [t for t in full if len(t) == 1 and t.isascii() and t.isprintable() and t != " "]
    vocab += chars
    vocab += ["##" + c for c in chars if c.isalnum() and "##" + c in full]
    seen = set(vocab)
    for t in full[1996:]:
        if len(vocab) == VOCAB_SIZE:
            break
        if t not in seen and t.isascii() and t.isalpha():
            vocab.append(t)
            seen.add(t)
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    return vocab


def byte_offset(text, char_index):
    return len(text[:char_index].encode("utf-8"))


def to_bytes(text, item):
    item = dict(item)
    if item.get("start") is not None:
        item["start"] = byte_offset(text, item["start"])
        item["end"] = byte_offset(text, item["end"])
    return item


def plain(x):
    """numpy scalars and arrays to JSON values."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def prepare(task, tiny, out, vocab_file, labels):
    """Copies the tiny model's config (with readable labels) and writes the tokenizer; returns
    a directory that from_pretrained can load (config, weights, tokenizer)."""
    dest = out / task
    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads((tiny / task / "config.json").read_text())
    if labels:
        config["id2label"] = {str(i): l for i, l in enumerate(labels)}
        config["label2id"] = {l: i for i, l in enumerate(labels)}
    (dest / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tok = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=128)
    tok.save_pretrained(dest)
    for name in ["tokenizer.json", "special_tokens_map.json"]:
        (dest / name).unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp())
    for f in dest.iterdir():
        if f.name != "expected.json":
            shutil.copy(f, work / f.name)
    shutil.copy(tiny / task / "model.safetensors", work / "model.safetensors")
    return dest, work


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True, help="all-MiniLM-L6-v2's vocab.txt")
    ap.add_argument("--tiny", default=ROOT / "fixtures/reference/tiny", type=Path)
    ap.add_argument("--out", default=ROOT / "fixtures/pipelines", type=Path)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    full = Path(args.vocab).read_text(encoding="utf-8").split("\n")
    vocab_file = Path(tempfile.mkdtemp()) / "vocab.txt"
    vocab_file.write_text("\n".join(small_vocab(full)) + "\n", encoding="utf-8")
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }

    def load(cls, work):
        m = cls.from_pretrained(work, attn_implementation="eager").eval()
        return m, BertTokenizerFast.from_pretrained(work)

    # text-classification: single texts and pairs, default function (softmax for 3 labels),
    # then the same weights read as multi-label (sigmoid).
    for task_dir, problem in [("sequence_classification", None), ("sequence_classification_multi", "multi_label_classification")]:
        dest, work = prepare("sequence_classification", args.tiny, args.out, vocab_file, SEQUENCE_LABELS)
        if problem:
            dest = args.out / task_dir
            dest.mkdir(exist_ok=True)
            config = json.loads((work / "config.json").read_text())
            config["problem_type"] = problem
            for d in (dest, work):
                (d / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            for name in ["vocab.txt", "tokenizer_config.json"]:
                shutil.copy(work / name, dest / name)
        model, tok = load(AutoModelForSequenceClassification, work)
        clf = pipeline("text-classification", model=model, tokenizer=tok, device="cpu")
        texts = [t for t in TEXTS if t]
        expected = {
            "versions": versions,
            "texts": texts,
            "all": [plain(clf(t, top_k=None)) for t in texts],
            "top1": [plain(clf(t, top_k=1)) for t in texts],
            "pairs": [list(p) for p in PAIRS],
            "pairs_all": [plain(clf({"text": a, "text_pair": b}, top_k=None)) for a, b in PAIRS],
        }
        (dest / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")

    # token-classification with each aggregation strategy.
    dest, work = prepare("token_classification", args.tiny, args.out, vocab_file, TOKEN_LABELS)
    model, tok = load(AutoModelForTokenClassification, work)
    ner = pipeline("token-classification", model=model, tokenizer=tok, device="cpu")
    expected = {"versions": versions, "texts": TEXTS}
    for agg in ["none", "simple", "first", "average", "max"]:
        expected[agg] = [
            [to_bytes(t, e) for e in plain(ner(t, aggregation_strategy=agg))] if t else []
            for t in TEXTS
        ]
    (dest / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")

    # fill-mask, top 5 and top 3.
    dest, work = prepare("masked_lm", args.tiny, args.out, vocab_file, None)
    model, tok = load(AutoModelForMaskedLM, work)
    fill = pipeline("fill-mask", model=model, tokenizer=tok, device="cpu")

    def per_mask(r):
        return [r] if r and isinstance(r[0], dict) else r

    expected = {
        "versions": versions,
        "texts": MASK_TEXTS,
        "top5": [plain(per_mask(fill(t))) for t in MASK_TEXTS],
        "top3": [plain(per_mask(fill(t, top_k=3))) for t in MASK_TEXTS],
    }
    (dest / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")

    # question-answering over contexts longer than the window.
    dest, work = prepare("question_answering", args.tiny, args.out, vocab_file, None)
    model, tok = load(AutoModelForQuestionAnswering, work)
    qa = pipeline("question-answering", model=model, tokenizer=tok, device="cpu")
    cases = []
    for question, context, opts in QA:
        r = qa(question=question, context=context, **opts)
        r = r if isinstance(r, list) else [r]
        cases.append({
            "question": question,
            "context": context,
            "options": opts,
            "answers": [to_bytes(context, plain(a)) for a in r],
        })
    expected = {"versions": versions, "cases": cases}
    (dest / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
