#!/usr/bin/env bash
# Microbenchmark (not a test): user-space instructions per NBD request through the pNFS direct
# path, counted by callgrind, which is repeatable on a busy machine where wall times are not.
#
# Runs `pnfsgw demo` under `valgrind --tool=callgrind` with its volume on /dev/shm twice: once
# with SMALL requests and once with LARGE ones (fio --ioengine=nbd, 4 KiB, QD16), and prints
# (Ir(LARGE) - Ir(SMALL)) / (LARGE - SMALL): start-up, the prefill and shutdown cancel out. The
# two callgrind files stay in the output directory for callgrind_annotate (compare functions
# between two binaries there: totals of one binary vary by a few percent between runs).
#
# Usage: bench/callgrind.sh [--rw randread|randwrite] [--small N] [--large N] [--out DIR]
# Environment: PNFSGW=path/to/pnfsgw (default: build with cargo --release).
set -euo pipefail

rw=randread
small=2000
large=12000
out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --rw) rw=$2; shift 2 ;;
    --small) small=$2; shift 2 ;;
    --large) large=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "callgrind: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $rw == randread || $rw == randwrite ]] || { echo "callgrind: --rw randread or randwrite" >&2; exit 2; }
for n in "$small" "$large"; do
  [[ $n =~ ^[0-9]+$ && $n -ge 100 && $n -le 1000000 ]] || { echo "callgrind: request counts 100..1000000" >&2; exit 2; }
done
((large > small)) || { echo "callgrind: --large must exceed --small" >&2; exit 2; }
for tool in valgrind callgrind_annotate fio ss; do
  command -v "$tool" >/dev/null || { echo "callgrind: $tool is missing" >&2; exit 2; }
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if [[ -z ${PNFSGW:-} ]]; then
  (cd "$root" && cargo build --release -q -p pnfsgw)
  PNFSGW="${CARGO_TARGET_DIR:-$root/target}/release/pnfsgw"
fi
[[ -x $PNFSGW ]] || { echo "callgrind: no pnfsgw at $PNFSGW" >&2; exit 2; }

# Volume and file sizes (RAM): the file's first half is prefilled and is what fio reads/writes.
volume_mib=128
file_mib=64
region_mib=$((file_mib / 2))
# Seconds to wait for the demo under valgrind to print its ready line.
ready_timeout_s=300

out=${out:-$(mktemp -d /tmp/pnfsgw-callgrind.XXXXXX)}
mkdir -p "$out"
state=""
pid=""
cleanup() {
  if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [[ -n $state ]]; then rm -rf "$state"; fi
}
trap cleanup EXIT

bench_name=callgrind
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

# One run with N requests; prints the program's total instruction count.
run() {
  local n=$1 port uri i
  state=$(mktemp -d /dev/shm/pnfsgw-callgrind.XXXXXX)
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$n.out" "$PNFSGW" demo \
    --state-dir "$state" --listen "127.0.0.1:$port" --size "${file_mib}M" \
    --volume-size "${volume_mib}M" >"$out/demo.$n.out" 2>"$out/demo.$n.err" &
  pid=$!
  for i in $(seq 1 $((ready_timeout_s * 5))); do
    grep -q '^pnfsgw demo: ready: ' "$out/demo.$n.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "callgrind: the demo exited (see $out/demo.$n.err)" >&2; return 1; }
    sleep 0.2
  done
  uri=$(sed -n 's/^pnfsgw demo: ready: //p' "$out/demo.$n.out" | head -1)
  [[ -n $uri ]] || { echo "callgrind: no ready line within $ready_timeout_s s" >&2; return 1; }
  fio --name=prefill --ioengine=nbd --uri="$uri" --rw=write --bs=1m --iodepth=4 \
    --size="${region_mib}m" --output-format=terse >/dev/null
  fio --name=job --ioengine=nbd --uri="$uri" --rw="$rw" --bs=4k --iodepth=16 --offset=0 \
    --size="${region_mib}m" --io_size=$((n * 4))k --randrepeat=1 --norandommap \
    --output-format=terse --terse-version=3 >"$out/fio.$n.txt"
  kill -TERM "$pid"
  wait "$pid" || { echo "callgrind: the demo did not stop cleanly (see $out/demo.$n.err)" >&2; pid=""; return 1; }
  pid=""
  rm -rf "$state"
  state=""
  callgrind_annotate "$out/callgrind.$n.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}'
}

a=$(run "$small")
b=$(run "$large")
[[ -n $a && -n $b ]] || { echo "callgrind: no instruction totals" >&2; exit 1; }
echo "$rw 4 KiB QD16: $(( (b - a) / (large - small) )) instructions per request ($small: $a, $large: $b; files in $out)"
