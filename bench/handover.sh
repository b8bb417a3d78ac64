#!/usr/bin/env bash
# Benchmark (not a test): the hand-over cost between two gateways on one pNFS file.
#
# Starts the embedded MDS (`pnfsgw mds`) on a scratch volume file and two `pnfsgw export
# --path /vm` processes (two hosts' gateways: separate NBD ports, their default control
# sockets and client owners), then runs bench/handover.py (python3-libnbd):
#   - the first direct I/O of one gateway after the other wrote and flushed (the recall round
#     trip a migrated VM's destination waits for), against the warm read after it;
#   - the write throughput while A and B take turns on one 1 MiB range (ping-pong), against A
#     alone with the same writes and flushes.
# Prints the figures, then each gateway's recall/commit/return counters.
#
# Usage: bench/handover.sh [--iterations N] [--keep]
# Environment: PNFSGW=path/to/pnfsgw (default: build with cargo --release).
set -euo pipefail

iterations=40
keep=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --iterations) iterations=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "handover: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $iterations =~ ^[0-9]+$ && $iterations -ge 2 && $iterations -le 10000 ]] ||
  { echo "handover: --iterations 2..10000" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
if [[ -z ${PNFSGW:-} ]]; then
  (cd "$here/.." && cargo build --release -q -p pnfsgw --bin pnfsgw)
  PNFSGW="$here/../target/release/pnfsgw"
fi
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import nbd' ||
  { echo "handover: needs the system python with libnbd (apt-get install python3-libnbd)" >&2; exit 2; }

dir=$(mktemp -d /tmp/pnfsgw-handover.XXXXXX)
pids=()
cleanup() {
  # Gateways first (they return their layouts to the MDS on the way out), then the MDS: a
  # gateway stopped after its MDS waits for it until its connect timeout.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  if [[ $keep -eq 0 ]]; then rm -rf "$dir"; else echo "kept $dir"; fi
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # FILE PATTERN: the line of FILE matching PATTERN, within 60 s
  for _ in $(seq 600); do
    grep -m1 "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "handover: no '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

truncate -s 256M "$dir/vol.img"
mds_port=$(free_port)
"$PNFSGW" mds --listen "127.0.0.1:$mds_port" --state "$dir/mds" --volume "$dir/vol.img" \
  --block-size 4096 >"$dir/mds.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do (echo >"/dev/tcp/127.0.0.1/$mds_port") 2>/dev/null && break; sleep 0.1; done

uris=() controls=()
for name in a b; do
  port=$(free_port)
  extra=()
  [[ $name == a ]] && extra=(--create 64M)
  "$PNFSGW" export --mds "127.0.0.1:$mds_port" --path /vm --nbd "127.0.0.1:$port" \
    --volume "$dir/vol.img" "${extra[@]}" >"$dir/$name.out" 2>"$dir/$name.log" &
  pids+=($!)
  uris+=("$(wait_for "$dir/$name.out" '^nbd://')")
  controls+=("/run/pnfsgw/export-vm-$port.sock")
done

echo "pnfsgw $("$PNFSGW" --version 2>/dev/null || true), $(nproc) CPUs, $(date -u +%FT%TZ)"
/usr/bin/python3 "$here/handover.py" "${uris[0]}" "${uris[1]}" "$iterations"
for i in 0 1; do
  echo "gateway $([[ $i == 0 ]] && echo A || echo B): $("$PNFSGW" stats --control "${controls[$i]}" |
    grep -E '^  pnfs\.(recalls|commits|layoutgets|layoutreturns|layouts_revoked|request_errors|mds_write_bytes|mds_read_bytes|contention_backoffs) ' |
    awk '{printf "%s=%s ", substr($1, 6), $2}')"
done
