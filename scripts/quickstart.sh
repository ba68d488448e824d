#!/usr/bin/env bash
# Sets everything up and runs the main job on the real all-MiniLM-L6-v2 checkpoint:
# fetch it (cached), build berth, convert it at f32 and int8, verify the files, embed three
# reference sentences with the reference forward pass, compare the embeddings with
# sentence-transformers', and embed two texts with `berth embed` (the fast path).
set -euo pipefail
cd "$(dirname "$0")/.."

minilm=$(scripts/fetch-minilm.sh)
cargo build --release -q -p berth-tools
berth=target/release/berth
mkdir -p target/quickstart
for dtype in f32 int8; do
    out=target/quickstart/all-MiniLM-L6-v2-$dtype.berth
    $berth convert "$minilm" -o "$out" --dtype "$dtype" | head -n 4
    $berth inspect "$out" --verify | grep -E '^(format|model|tokenizer|verified|loaded)'
    $berth run "$out" --inputs fixtures/quickstart/inputs.safetensors --output target/quickstart/out-$dtype.safetensors
    printf 'sentence embeddings vs sentence-transformers (%s): ' "$dtype"
    scripts/compare.py target/quickstart/out-$dtype.safetensors:sentence_embedding \
        fixtures/quickstart/inputs.safetensors:golden_sentence_embedding
done
echo 'berth embed (int8, fast path), the first values of each embedding:'
$berth embed target/quickstart/all-MiniLM-L6-v2-int8.berth "The cat sits on the mat." "A dog plays in the park." | cut -c1-100
