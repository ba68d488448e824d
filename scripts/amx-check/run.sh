#!/usr/bin/env bash
# Issue 7's checks on a machine with AMX, from what scripts/amx-check/prepare.sh put in .dev/
# (run from the repository root; results under $OUT, else /tmp/amx-check):
#   tests  every kernels and engine test binary with BERTH_ISA=amx, the register-only peaks,
#          the tile loops alone (tile_loops: A as packed, in tile order, held close), the tile
#          GEMMs with A in rows against A in tile order (gemm_sweep --tile-order, three runs),
#          the GEMM sweep with the tiles forced at every M (sweep.json), and the attention
#          kernels, f32 and bf16, on amx (bf16 on the tiles) and on avx512
#   bench  berth bench M1, B1, B2 at int8 and bf16 on `amx` and on `avx512` (bench-*.json),
#          int8 with bf16 attention on `amx` (bench-amx-bf16att.json) and with activations
#          quantised per row (bench-amx-row.json),
#          thread scaling of B1 and B3 (scaling.json) and of B1 on `avx512` (scaling-avx512.json:
#          there threads that divide N share one packing of A for bf16 too; on the tiles, int8 only),
#          embeddings of the 48 reference sentences on both paths (acc.txt), and ONNX Runtime
#          through benches/peers.py
#          (peers.json) when the machine's Python has onnxruntime, torch and transformers
#   all    both (the default)
# STAGE may also list parts, comma-separated, for a shorter run: tests (without the sweep
# when SWEEP=0), bench1 (the 1-thread benches at M1 and B1 only), scaling, acc, peers. A lease
# returns at most 8 files from $OUT, and `all` writes 10: list the stages whose files you need.
# One-thread timings run pinned to one CPU (taskset, where there is one), after the random
# MiniLM (made with torch on every core meanwhile) is written: on the lent machine the same
# record varied up to 2x between runs, and more while torch ran.
# MiniLM is a model with all-MiniLM-L6-v2's shapes and random weights (make-random-minilm.py,
# which needs torch, transformers and safetensors): timings and path-to-path agreement only.
set -u
D=$PWD/.dev
S=$PWD/scripts/amx-check
O=${OUT:-/tmp/amx-check}; mkdir -p "$O"
L=$O/log.txt
STAGE=${1:-all}
[ "$STAGE" = all ] && STAGE=tests,bench,scaling,acc,peers
[ "$STAGE" = bench ] && STAGE=bench,scaling,acc,peers
has() { case ",$STAGE," in *",$1,"*) return 0 ;; esac; return 1; }
log() { echo "=== $* ($(date +%T))" | tee -a "$L"; }
pin=""
command -v taskset > /dev/null && pin="taskset -c $(($(nproc) > 5 ? 5 : $(nproc) - 1))"
# Waits (up to 150 s) for the random MiniLM, which the tests stage starts.
minilm_written() {
    for _ in $(seq 150); do grep -q wrote /tmp/mk.log 2>/dev/null && return 0; sleep 1; done
    return 1
}
minilm() {
    rm -rf /tmp/minilm && cp -r "$D/minilm" /tmp/minilm &&
        python3 "$S/make-random-minilm.py" /tmp/minilm > /tmp/mk.log 2>&1
}
if has tests; then
    # The random MiniLM for the bench stage, made meanwhile in a session of its own (it
    # outlives this command when the machine stays up between stages).
    setsid nohup bash -c "$(declare -f minilm); D=$D S=$S minilm" > /dev/null 2>&1 < /dev/null &
    log cpu
    lscpu | grep -E 'Model name|^CPU\(s\)|L2|L3' | tee -a "$L"
    "$D/isa" | tr '\n' ' '; echo
    "$D/isa" --variants
    log tests
    for t in "$D"/kernels-* "$D"/engine-*; do
        n=$(basename "$t")
        echo "--- $n" >> "$L"
        BERTH_ISA=amx timeout 150 "$t" --test-threads "$(nproc)" >> "$L" 2>&1
        rc=$?
        echo "$n rc=$rc $(grep -E '^test result' "$L" | tail -1)"
        [ $rc = 0 ] || grep -E 'panicked|FAILED|failed|error' "$L" | tail -8
    done
    minilm_written
    log peak
    timeout 60 "$D/peak" | tee -a "$L"
    # The tile loops alone, A as packed, in tile order and held close: what bounds the tile GEMM.
    log tile loops
    timeout 60 $pin "$D/tile_loops" | tee -a "$L"
    # The whole tile GEMMs with A in rows (the tables') and in tile order, shape by shape in
    # one process, three times.
    log tile order
    for rep in 1 2 3; do
        echo "--- rep $rep" >> "$L"
        BERTH_ISA=amx timeout 60 $pin "$D/gemm_sweep" --ms 128,512 --min-ms 25 --tile-order \
            --kn 384x1152,1536x384,768x768,3072x768,768x3072 2>&1 | grep -E 'amx' >> "$L"
    done
    python3 "$S/tile_order.py" "$L" | tee -a "$L"
    if [ "${SWEEP:-1}" != 0 ]; then
        log sweep
        BERTH_AMX_MIN_ROWS=1 timeout 120 $pin "$D/gemm_sweep" --ms 1,2,4,8,16,32,128,512 --min-ms 60 \
            --json "$O/sweep.json" >> "$L" 2>&1
        echo "sweep rc=$?"
    fi
    log attention
    # bf16 on the tiles (amx) against AVX-512 BF16 at every length: the tiles' threshold.
    for isa in amx avx512; do
        BERTH_ISA=$isa timeout 60 $pin "$D/attention_sweep" | tee -a "$L"
    done
fi
has tests && [ "$STAGE" = tests ] && { log done; exit 0; }
export BERTH_CACHE_DIR=/tmp/bc BERTH_MINILM_DIR=/tmp/minilm
minilm_written || minilm
tail -1 /tmp/mk.log
if has bench1; then
    log bench1
    # 1 thread, M1 and B1: the tiles against AVX-512, int8 with bf16 attention and per row.
    b() { timeout 120 $pin "$D/berth" bench --workload M1,B1 --threads 1 --runs 10 --min-time 0.5 "$@"; }
    for isa in amx avx512; do
        BERTH_ISA=$isa b --dtype int8,bf16 --json > "$O/bench1-$isa.json" 2>> "$L"
        echo "bench1 $isa rc=$?"
    done
    BERTH_ISA=amx b --dtype int8 --bf16-attention --json > "$O/bench1-att.json" 2>> "$L"
    echo "bench1 amx bf16-attention rc=$?"
    BERTH_ISA=amx b --dtype int8 --act-groups row --json > "$O/bench1-row.json" 2>> "$L"
    echo "bench1 amx row rc=$?"
    python3 "$S/table.py" "$O"/bench1-*.json | tee -a "$L"
fi
if has bench; then
log bench
for isa in amx avx512; do
    BERTH_ISA=$isa timeout 150 $pin "$D/berth" bench --workload M1,B1,B2 --dtype int8,bf16 --threads 1 \
        --runs 10 --min-time 0.5 --json > "$O/bench-$isa.json" 2>> "$L"
    echo "bench $isa rc=$?"
done
# int8 with attention on the tiles (bf16) against bench-amx.json's int8 rows (f32 attention):
# which should be int8's default on AMX.
BERTH_ISA=amx timeout 150 $pin "$D/berth" bench --workload M1,B1,B2 --dtype int8 --threads 1 \
    --runs 10 --min-time 0.5 --bf16-attention --json > "$O/bench-amx-bf16att.json" 2>> "$L"
echo "bench amx bf16-attention rc=$?"
# int8 per row against the default groups (128/64): what the tiles' per-group conversion costs.
BERTH_ISA=amx timeout 150 $pin "$D/berth" bench --workload M1,B1,B2 --dtype int8 --threads 1 \
    --runs 10 --min-time 0.5 --act-groups row --json > "$O/bench-amx-row.json" 2>> "$L"
echo "bench amx act-groups row rc=$?"
fi
if has scaling; then
log scaling
BERTH_ISA=amx timeout 150 "$D/berth" bench --workload B1,B3 --dtype int8,bf16 \
    --threads "1,2,4,8,$(nproc)" --runs 10 --min-time 0.3 --json > "$O/scaling.json" 2>> "$L"
echo "scaling rc=$?"
BERTH_ISA=avx512 timeout 150 "$D/berth" bench --workload B1 --dtype int8,bf16 \
    --threads "1,2,4,8,$(nproc)" --runs 10 --min-time 0.3 --json > "$O/scaling-avx512.json" 2>> "$L"
echo "scaling avx512 rc=$?"
fi
if has acc; then
log accuracy
A=/tmp/acc
mkdir -p $A
"$D/berth" convert /tmp/minilm -o $A/f32.berth --quiet &&
    "$D/berth" convert /tmp/minilm -o $A/int8.berth --dtype int8 --quiet
python3 -c "import json; [print(json.dumps(s)) for s in json.load(open('fixtures/reference/minilm/sentences.json'))]" > $A/s.jsonl
for isa in amx avx512; do
    BERTH_ISA=$isa "$D/berth" embed $A/f32.berth --jsonl --npy "$A/f32-$isa.npy" < $A/s.jsonl
    BERTH_ISA=$isa "$D/berth" embed $A/f32.berth --bf16 --jsonl --npy "$A/bf16-$isa.npy" < $A/s.jsonl
    BERTH_ISA=$isa "$D/berth" embed $A/int8.berth --jsonl --npy "$A/int8-$isa.npy" < $A/s.jsonl
    BERTH_ISA=$isa "$D/berth" embed $A/int8.berth --bf16-attention --jsonl \
        --npy "$A/int8att-$isa.npy" < $A/s.jsonl
done
python3 "$S/cosines.py" $A 2>&1 | tee "$O/acc.txt"
fi
if has peers; then
log peers
py=$(python3 -c 'import sys; print(sys.prefix)')
timeout "${PEERS_S:-170}" python3 benches/peers.py --venv "$py" --berth "$D/berth" --workload M1,B1 \
    --threads 1 --peers ort,ort-int8 --runs 10 --json "$O/peers.json" >> "$L" 2>&1
echo "peers rc=$?"
fi
log done
