#!/usr/bin/env bash
# Refreshes fixtures/reference, the Hugging Face goldens the tests compare against.
#
#   scripts/update-fixtures.sh copy <reference-dir>   # copy an existing reference folder
#   scripts/update-fixtures.sh regenerate             # rerun make_reference.py (needs torch,
#                                                     # transformers, sentence-transformers)
#   scripts/update-fixtures.sh tokenizer [python]     # rebuild fixtures/tokenizer: the corpus,
#                                                     # then Hugging Face's output on it (the
#                                                     # python given must have tokenizers==0.23.3)
#   scripts/update-fixtures.sh pipelines [python]     # rebuild fixtures/pipelines: the tiny
#                                                     # task models through transformers'
#                                                     # pipelines (the python given needs
#                                                     # torch; transformers 4.57.1, the last
#                                                     # with the question-answering pipeline,
#                                                     # is installed for it under ~/.cache)
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
pipelines)
    py="${2:-python3}"
    minilm=$("$root/scripts/fetch-minilm.sh")
    tf4="${BERTH_TF4_DIR:-$HOME/.cache/berth/transformers-4.57.1}"
    if [ ! -d "$tf4/transformers" ]; then
        "$py" -m pip install -q --target "$tf4" --no-deps transformers==4.57.1 \
            huggingface_hub==0.36.0 tokenizers==0.22.1 requests urllib3 idna certifi \
            charset_normalizer
    fi
    PYTHONPATH="$tf4" "$py" "$root/scripts/make-pipeline-fixtures.py" --vocab "$minilm/vocab.txt"
    ;;
*)
    sed -n '2,15p' "$0"
    exit 2
    ;;
esac
