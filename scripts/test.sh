#!/usr/bin/env bash
# The whole test suite: what .ci/run calls and what README.md tells developers to run.
#
#   scripts/test.sh
#
# Fetches all-MiniLM-L6-v2 (cached), checks formatting and lints, runs every test (doctests
# included) with the best instruction-set path, runs the examples on MiniLM, checks that the
# berth binary calls no intrinsic out of line (objdump), runs the tests
# again with each lower instruction-set path forced through BERTH_ISA, runs the
# engine and kernels under qemu for aarch64 (NEON) when the cross tools are installed, and
# smoke-runs the fuzzer when nightly and cargo-fuzz are. With BERTH_REQUIRE_ALL=1 (CI), a missing
# cross toolchain is a failure instead of a notice.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
skip() {
    if [ "${BERTH_REQUIRE_ALL:-0}" = 1 ]; then
        echo "error: $*" >&2
        exit 1
    fi
    echo "skipped: $*"
}

step "fetch all-MiniLM-L6-v2"
BERTH_MINILM_DIR="${BERTH_MINILM_DIR:-$(scripts/fetch-minilm.sh)}"
export BERTH_MINILM_DIR
echo "$BERTH_MINILM_DIR"

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --profile ci -- -D warnings

step "tests"
# The kernel tables the tests hold against the reference (path and int8 kernel), for the log.
cargo run -q --profile ci -p berth-kernels --example isa -- --variants
cargo test --workspace --profile ci

step "examples on all-MiniLM-L6-v2"
examples_dir=$(mktemp -d)
trap 'rm -rf "$examples_dir"' EXIT
cargo run -q --profile ci -p berth-tools --bin berth -- convert "$BERTH_MINILM_DIR" -o "$examples_dir/minilm.berth" --quiet
cargo run -q --profile ci -p berth --example semantic_search -- "$examples_dir/minilm.berth"
cargo run -q --profile ci -p berth --example rerank -- "$examples_dir/minilm.berth"

step "no intrinsic called out of line (the release berth binary's disassembly)"
# A closure (`array::from_fn`'s, a `map`'s) is compiled without its caller's #[target_feature]s,
# so the intrinsics in it become calls, one per vector (docs/KERNELS.md). xgetbv is called once,
# by the CPU detection, on purpose. The release build is the one checked, the binary users run:
# in the ci profile, debug assertions put UB checks into the intrinsics' bodies, and LLVM then
# left some out of line where release inlines them all (2026-11-27: 50 calls in ci, none in
# release, for the same source).
if command -v objdump >/dev/null; then
    cargo build -q --release -p berth-tools --bin berth
    berth_bin="${CARGO_TARGET_DIR:-target}/release/berth"
    calls=$(objdump -d --no-show-raw-insn -C "$berth_bin" | grep -E 'call.*<core::core_arch::' |
        grep -v '_xgetbv' || true)
    if [ -n "$calls" ]; then
        echo "$calls" | sed 's/.*</</' | sort | uniq -c
        echo "error: intrinsics called out of line in $berth_bin" >&2
        exit 1
    fi
    echo "none in $berth_bin"
else
    skip "objdump missing (apt install binutils)"
fi

# The kernels and the engine once more for every lower path this CPU can run.
for isa in $(cargo run -q --profile ci -p berth-kernels --example isa | tail -n +2); do
    step "tests with BERTH_ISA=$isa"
    BERTH_ISA=$isa cargo test --profile ci -p berth-kernels -p berth
done

step "aarch64 (NEON) under qemu"
if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null &&
    rustup target list --installed | grep -q aarch64-unknown-linux-gnu; then
    cargo clippy --profile ci --target aarch64-unknown-linux-gnu -p berth-kernels -p berth --all-targets -- -D warnings
    cargo test --profile ci --target aarch64-unknown-linux-gnu -p berth-kernels -p berth
else
    skip "aarch64 cross tools missing (rustup target add aarch64-unknown-linux-gnu; apt install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)"
fi

step "fuzz smoke (reader and tokenizer, 30 s each)"
if rustup toolchain list | grep -q '^nightly' && command -v cargo-fuzz >/dev/null; then
    cargo run -q --profile ci -p berth --example fuzz_seeds -- fuzz/corpus/reader
    python3 scripts/tokenizer/fuzz_seeds.py fuzz/corpus/tokenizer
    (cd fuzz && cargo +nightly fuzz run reader corpus/reader -- -max_len=65536 -max_total_time=30)
    (cd fuzz && cargo +nightly fuzz run tokenizer corpus/tokenizer -- -max_total_time=30)
else
    # Optional even in CI: the fuzzer needs a nightly toolchain, which not every machine has.
    echo "skipped: nightly toolchain or cargo-fuzz missing (cargo install cargo-fuzz)"
fi

step "all tests passed"
