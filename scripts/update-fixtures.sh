#!/usr/bin/env bash
# Refreshes fixtures/reference, the Hugging Face goldens the tests compare against.
#
#   scripts/update-fixtures.sh copy <reference-dir>   # copy an existing reference folder
#   scripts/update-fixtures.sh regenerate             # rerun make_reference.py (needs torch,
#                                                     # transformers, sentence-transformers)
#   scripts/update-fixtures.sh tokenizer [python]     # rebuild fixtures/tokenizer: the corpus,
#                                                     # then Hugging Face's output on it (the
#                                                     # python given must have tokenizers==0.23.3)
# The goldens were made by fixtures/reference/make_reference.py; its README says how.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/fixtures/reference"

case "${1:-}" in
copy)
    src="${2:?usage: update-fixtures.sh copy <reference-dir>}"
    mkdir -p "$dest"
    cp "$src"/README.md "$src"/manifest.json "$src"/make_reference.py "$src"/check_tiny_numpy.py "$dest"/
    rm -rf "$dest/minilm" "$dest/tiny"
    cp -r "$src/minilm" "$src/tiny" "$dest"/
    ;;
regenerate)
    minilm=$("$root/scripts/fetch-minilm.sh")
    python3 "$dest/make_reference.py" --minilm-dir "$minilm" --out "$dest"
    ;;
tokenizer)
    py="${2:-python3}"
    minilm=$("$root/scripts/fetch-minilm.sh")
    python3 "$root/scripts/tokenizer/make_corpus.py"
    "$py" "$root/scripts/tokenizer/make_expected.py" "$minilm/tokenizer.json"
    cp "$minilm/vocab.txt" "$root/fixtures/tokenizer/vocab.txt"
    ;;
*)
    sed -n '2,9p' "$0"
    exit 2
    ;;
esac
