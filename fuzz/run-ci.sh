#!/usr/bin/env bash
# Bounded fuzzing of every decoder with a target here (`cargo fuzz list`), for CI. The
# targets share FUZZ_TOTAL_SECONDS (default 120; at least 10 s each), or each runs
# FUZZ_SECONDS if that is set, starting from the seed inputs in fuzz/seeds/<target>/ when
# there are any. Any crash, panic, out-of-memory or slow input fails the script, and the
# input is left in fuzz/artifacts/<target>/.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler (libfuzzer-sys builds
# libFuzzer). cargo-fuzz passes nightly-only rustc flags (-Zsanitizer=address and others); on
# the stable toolchain RUSTC_BOOTSTRAP=1 makes rustc accept them.
#
# Usage: fuzz/run-ci.sh [target ...]     (default: every target)
# Example: FUZZ_SECONDS=60 fuzz/run-ci.sh block_layout
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-ci.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 1
fi
export RUSTC_BOOTSTRAP=1

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
if [ ${#targets[@]} -eq 0 ]; then
    echo "run-ci.sh: no fuzz targets found" >&2
    exit 1
fi
total="${FUZZ_TOTAL_SECONDS:-120}"
per_target=$(( total / ${#targets[@]} ))
if [ "$per_target" -lt 10 ]; then
    per_target=10
fi
seconds="${FUZZ_SECONDS:-$per_target}"

# Build first, so that compiling does not eat the fuzzing time.
for t in "${targets[@]}"; do
    cargo fuzz build "$t"
done

failed=()
for t in "${targets[@]}"; do
    echo "=== fuzzing $t for ${seconds}s"
    # The first directory collects new inputs; the seeds are only read.
    dirs=("$fuzz_dir/corpus/$t")
    mkdir -p "${dirs[0]}"
    if [ -d "$fuzz_dir/seeds/$t" ]; then
        dirs+=("$fuzz_dir/seeds/$t")
    fi
    if ! cargo fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "run-ci.sh: crashes in: ${failed[*]} (inputs under $fuzz_dir/artifacts/)" >&2
    exit 1
fi
echo "run-ci.sh: ${#targets[@]} targets fuzzed ${seconds}s each without a crash"
