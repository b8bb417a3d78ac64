#!/usr/bin/env bash
# Bounded fuzzing of the pnfs-proto decoders, for CI: each target runs FUZZ_SECONDS (default
# 20) seconds starting from the seed inputs in fuzz/seeds/<target>/; any crash, panic,
# out-of-memory or slow input fails the script, and the input is left in
# fuzz/artifacts/<target>/.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler (libfuzzer-sys builds
# libFuzzer). cargo-fuzz passes nightly-only rustc flags (-Zsanitizer=address and others); on
# the stable toolchain RUSTC_BOOTSTRAP=1 makes rustc accept them.
#
# Usage: fuzz/run-ci.sh [target ...]     (default: every target)
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."

seconds="${FUZZ_SECONDS:-20}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(compound_args cb_args cb_results block_layout scsi_layout rpc_record)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-ci.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 1
fi
export RUSTC_BOOTSTRAP=1

# Build first, so that compiling does not eat the fuzzing time.
for t in "${targets[@]}"; do
    cargo fuzz build "$t"
done

failed=()
for t in "${targets[@]}"; do
    echo "=== fuzzing $t for ${seconds}s"
    corpus="$fuzz_dir/corpus/$t"
    mkdir -p "$corpus" "$fuzz_dir/seeds/$t"
    # The first directory collects new inputs; the seeds are only read.
    if ! cargo fuzz run "$t" "$corpus" "$fuzz_dir/seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "run-ci.sh: crashes in: ${failed[*]} (inputs under $fuzz_dir/artifacts/)" >&2
    exit 1
fi
echo "run-ci.sh: ${#targets[@]} targets fuzzed ${seconds}s each without a crash"
