#!/usr/bin/env bash
# Builds what scripts/amx-check/run.sh runs on a machine with AMX (a lent machine that has no
# Rust toolchain and no network), into .dev/ (ignored by git): the kernels' and the engine's
# test binaries (ci profile), the berth binary and the peak, gemm_sweep, attention_sweep and
# tile_loops examples (release), all stripped of debug info, and all-MiniLM-L6-v2's config and
# tokenizer files (its weights are made up there by make-random-minilm.py: the real ones are
# too large to carry).
#
#     scripts/amx-check/prepare.sh      # then run `bash scripts/amx-check/run.sh` there,
#                                       # carrying .dev
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.dev
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")" "$out"
grep -qx "/$out/" "$exclude" 2>/dev/null || echo "/$out/" >> "$exclude"
rm -rf "${out:?}"/*

cargo build -q --release -p berth-tools --bin berth -p berth-kernels --example peak \
    --example gemm_sweep --example attention_sweep --example isa --example tile_loops
for f in berth examples/peak examples/gemm_sweep examples/attention_sweep examples/isa \
    examples/tile_loops; do
    objcopy --strip-debug "target/release/$f" "$out/$(basename "$f")"
done
# The test binaries, named crate-target (kernels-gemm, engine-fast, ...).
cargo test -q --profile ci -p berth-kernels -p berth --no-run --message-format=json |
    python3 -c '
import json, sys
from pathlib import Path
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        crate = Path(m["manifest_path"]).parent.name  # kernels or engine
        name = "lib" if "lib" in m["target"]["kind"] else m["target"]["name"]
        print(m["executable"], f"{crate}-{name}")
' | while read -r exe name; do objcopy --strip-debug "$exe" "$out/$name"; done

minilm=${BERTH_MINILM_DIR:-${BERTH_CACHE_DIR:-$HOME/.cache/berth}/all-MiniLM-L6-v2}
mkdir -p "$out/minilm"
for f in config.json tokenizer.json vocab.txt modules.json sentence_bert_config.json \
    config_sentence_transformers.json special_tokens_map.json tokenizer_config.json 1_Pooling; do
    cp -r "$minilm/$f" "$out/minilm/"
done
du -sh "$out"
ls "$out"
