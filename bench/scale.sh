#!/usr/bin/env bash
# Benchmark (not a test): memory and scale with many devices, and devices under load together.
#
# Starts the embedded MDS (`pnfsgw mds`, sparse volume file) and creates the files with
# `pnfsgw export --create` (a few at a time), then:
#   run N        `pnfsgw run` with N configured NBD devices (default 64 and 1024): time from
#                start to the "ready" log line, RSS idle at ready, RSS after 4 KiB writes
#                (--writes of them, random, QD1) on 8 of the devices, with every device's
#                layouts then cached in memory;
#   load         8 devices under concurrent 4 KiB random first writes (fio --ioengine=nbd,
#                one job per device, QD16, --load-seconds, into never-written files of
#                --load-size), IOPS per device and in sum, against one device alone (same job,
#                its own fresh file), and the gateway's CPU per request (from /proc);
#   1M extents   the extent cache's heap for 1M cached extents in one file
#                (`cargo test -p pnfs-gateway --test extent_cache_memory`).
# Prints a table and writes it to --out (default bench/results/DATE-scale.txt).
#
# Usage: bench/scale.sh [--devices "64 1024"] [--load-seconds S] [--load-size SIZE_MIB]
#                       [--writes N] [--out FILE] [--no-extents] [--keep]
# Environment: PNFSGW=path/to/pnfsgw (default: build with cargo --release).
set -euo pipefail

device_counts="64 1024"
load_seconds=10
load_mib=1024
writes=64
out=""
extents=1
keep=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --devices) device_counts=$2; shift 2 ;;
    --load-seconds) load_seconds=$2; shift 2 ;;
    --load-size) load_mib=$2; shift 2 ;;
    --writes) writes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-extents) extents=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "scale: unknown argument $1" >&2; exit 2 ;;
  esac
done
max_devices=0
for n in $device_counts; do
  [[ $n =~ ^[0-9]+$ && $n -ge 8 && $n -le 4096 ]] || { echo "scale: --devices: counts 8..4096" >&2; exit 2; }
  ((n > max_devices)) && max_devices=$n
done
[[ $load_seconds =~ ^[0-9]+$ && $load_seconds -ge 1 && $load_seconds -le 300 ]] ||
  { echo "scale: --load-seconds 1..300" >&2; exit 2; }
[[ $load_mib =~ ^[0-9]+$ && $load_mib -ge 16 && $load_mib -le 65536 ]] ||
  { echo "scale: --load-size 16..65536 (MiB)" >&2; exit 2; }
[[ $writes =~ ^[0-9]+$ && $writes -ge 1 && $writes -le 100000 ]] ||
  { echo "scale: --writes 1..100000" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${out:-$here/results/$(date -u +%F)-scale.txt}
for tool in fio ss python3; do
  command -v "$tool" >/dev/null || { echo "scale: $tool is missing (run tests/setup.sh)" >&2; exit 2; }
done
fio --enghelp=nbd >/dev/null 2>&1 || { echo "scale: this fio has no nbd engine" >&2; exit 2; }
if [[ -z ${PNFSGW:-} ]]; then
  (cd "$root" && cargo build --release -q -p pnfsgw --bin pnfsgw)
  PNFSGW="${CARGO_TARGET_DIR:-$root/target}/release/pnfsgw"
fi
[[ -x $PNFSGW ]] || { echo "scale: no pnfsgw at $PNFSGW" >&2; exit 2; }

# Small files for the device counts, big sparse ones for the first-write load (1 alone + 8).
device_mib=64
load_files=9
volume_mib=$(( (max_devices * 8) + (load_files * load_mib) + 1024 ))
dir=$(mktemp -d /var/tmp/pnfsgw-scale.XXXXXX)
pids=()
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  if [[ $keep -eq 0 ]]; then rm -rf "$dir"; else echo "kept $dir" >&2; fi
}
trap cleanup EXIT

bench_name=scale
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
now() { date +%s.%N; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)
# wait_line FILE PATTERN PID: waits (bounded) until FILE has PATTERN; fails if PID died.
wait_line() {
  local deadline=$((SECONDS + 300))
  while ((SECONDS < deadline)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "scale: process died; $1:" >&2; tail -5 "$1" >&2; return 1; }
    sleep 0.05
  done
  echo "scale: no '$2' in $1 within 300 s" >&2; return 1
}

truncate -s "${volume_mib}M" "$dir/vol.img"
mds_port=$(free_port)
"$PNFSGW" mds --listen "127.0.0.1:$mds_port" --state "$dir/mds" --volume "$dir/vol.img" \
  --block-size 4096 >"$dir/mds.log" 2>&1 &
mds_pid=$!
pids+=("$mds_pid")
for _ in $(seq 600); do (echo >"/dev/tcp/127.0.0.1/$mds_port") 2>/dev/null && break; sleep 0.1; done

# create PATH SIZE_MIB: one `pnfsgw export --create`, stopped once it serves. Tried twice
# (a port another creation took in the meantime).
create() {
  local port log pid try
  log="$dir/create-${1//\//_}"
  for try in 1 2; do
    port=$(free_port)
    "$PNFSGW" export --mds "127.0.0.1:$mds_port" --path "$1" --create "${2}M" \
      --nbd "127.0.0.1:$port" --volume "$dir/vol.img" --control "$log.sock" \
      >"$log.out" 2>"$log.log" &
    pid=$!
    if wait_line "$log.out" '^nbd://' "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      wait "$pid" && return 0
    fi
    echo "scale: creating $1 failed (try $try):" >&2
    tail -3 "$log.log" >&2
  done
  return 1
}
echo "scale: creating $max_devices + $load_files files" >&2
t0=$(now)
batch=()
# A failed creation ends the script (set -e on `wait`).
for ((i = 0; i < max_devices; i++)); do
  create "$(printf '/d%04d' "$i")" "$device_mib" & batch+=($!)
  if ((${#batch[@]} == 8)); then for p in "${batch[@]}"; do wait "$p"; done; batch=(); fi
done
for ((i = 0; i < load_files; i++)); do create "/load$i" "$load_mib" & batch+=($!); done
for p in "${batch[@]}"; do wait "$p"; done
echo "scale: files created in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') s" >&2

# config N FIRST_FILE_PATTERN...: a `pnfsgw run` configuration with N devices.
config() {
  local n=$1 pattern=$2 port=$3 i
  printf '[mds]\naddresses = ["127.0.0.1:%s"]\nclient_owner = "pnfsgw:scale-%s"\n' "$mds_port" "$n"
  printf '[volumes]\nsearch = ["%s"]\n' "$dir/vol.img"
  printf '[nbd]\ntcp = ["127.0.0.1:%s"]\nunix = []\nmax_connections = 64\n' "$port"
  printf '[control]\nsocket = "%s/control-%s.sock"\n' "$dir" "$n"
  for ((i = 0; i < n; i++)); do
    # shellcheck disable=SC2059
    printf '[[device]]\nname = "d%d"\npath = "'"$pattern"'"\nfrontends = ["nbd"]\n' "$i" "$i"
  done
}

# start_run NAME N PATTERN: starts `pnfsgw run`; sets run_pid, run_port, ready_s.
start_run() {
  run_port=$(free_port)
  config "$2" "$3" "$run_port" >"$dir/$1.toml"
  local t
  t=$(now)
  RUST_LOG=info "$PNFSGW" run --config "$dir/$1.toml" >"$dir/$1.out" 2>"$dir/$1.log" &
  run_pid=$!
  pids+=("$run_pid")
  wait_line "$dir/$1.log" 'ready: serving' "$run_pid"
  ready_s=$(awk -v a="$t" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
  if grep -q 'failed:' <(grep 'ready: serving' "$dir/$1.log"); then
    echo "scale: $1: some devices failed:" >&2; grep 'ready: serving' "$dir/$1.log" >&2; return 1
  fi
}
stop_run() {
  kill -TERM "$run_pid"
  wait "$run_pid" || { echo "scale: pnfsgw run exited with $?" >&2; return 1; }
}

# fio_nbd ARGS...: terse v3 output lines, one per job (write IOPS in field 49).
fio_nbd() { fio --output-format=terse --terse-version=3 "$@" 2>>"$dir/fio.err"; }

rows=()
for n in $device_counts; do
  echo "scale: run with $n devices" >&2
  start_run "run$n" "$n" '/d%04d'
  idle=$(rss_mib "$run_pid")
  jobs=()
  for ((i = 0; i < 8; i++)); do
    jobs+=(--name="w$i" --uri="nbd://127.0.0.1:$run_port/d$((i * n / 8))" --rw=randwrite --bs=4k
           --iodepth=1 --number_ios="$writes" --size="${device_mib}M" --norandommap)
  done
  fio_nbd --ioengine=nbd "${jobs[@]}" >/dev/null
  written=$(rss_mib "$run_pid")
  rows+=("$(printf '| pnfsgw run, %5d devices | ready %6.2f s | RSS idle %6.1f MiB | RSS after %d 4K writes on 8 devices %6.1f MiB |' \
    "$n" "$ready_s" "$idle" "$writes" "$written")")
  stop_run
done

echo "scale: load, one device alone, then 8 together" >&2
start_run load 9 '/load%d'
load_job() { # DEVICE: one fio job's options
  echo --name="load$1" --uri="nbd://127.0.0.1:$run_port/d$1" --rw=randwrite --bs=4k --iodepth=16 \
    --size="${load_mib}M" --runtime="$load_seconds" --time_based --norandommap --randrepeat=0
}
c0=$(cpu_ticks "$run_pid")
# shellcheck disable=SC2046
alone=$(fio_nbd --ioengine=nbd $(load_job 0) | awk -F';' '/^3;/ {printf "%d", $49}')
c1=$(cpu_ticks "$run_pid")
alone_us=$(awk -v t=$((c1 - c0)) -v hz="$clk_tck" -v n="$alone" -v s="$load_seconds" \
  'BEGIN {printf "%.1f", (n > 0 ? t * 1e6 / hz / (n * s) : 0)}')
all=()
for ((i = 1; i <= 8; i++)); do all+=($(load_job "$i")); done
c0=$(cpu_ticks "$run_pid")
m0=$(cpu_ticks "$mds_pid")
each=$(fio_nbd --ioengine=nbd "${all[@]}" | awk -F';' '/^3;/ {printf "%d ", $49}')
c1=$(cpu_ticks "$run_pid")
m1=$(cpu_ticks "$mds_pid")
sum=$(awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; print s}' <<<"$each")
min=$(tr ' ' '\n' <<<"$each" | grep . | sort -n | head -1)
max=$(tr ' ' '\n' <<<"$each" | grep . | sort -n | tail -1)
mds_us=$(awk -v t=$((m1 - m0)) -v hz="$clk_tck" -v n="$sum" -v s="$load_seconds" \
  'BEGIN {printf "%.1f", (n > 0 ? t * 1e6 / hz / (n * s) : 0)}')
each_us=$(awk -v t=$((c1 - c0)) -v hz="$clk_tck" -v n="$sum" -v s="$load_seconds" \
  'BEGIN {printf "%.1f", (n > 0 ? t * 1e6 / hz / (n * s) : 0)}')
load_rss=$(rss_mib "$run_pid")
stats=$("$PNFSGW" stats --control "$dir/control-9.sock" 2>&1 | tr -s ' \n' ' ' |
  grep -oE 'pnfs\.(layoutgets|commits|cached_pieces|window_evictions|evictions|request_errors) [0-9]+' |
  awk '!seen[$1]++' | tr '\n' ' ' || true)
stop_run

extent_line="(skipped: --no-extents)"
if [[ $extents -eq 1 ]]; then
  echo "scale: 1M cached extents (cargo test; the heap figure is the same in any profile)" >&2
  extent_line=$(cd "$root" && cargo test -q -p pnfs-gateway --test extent_cache_memory \
    -- --nocapture 2>&1 | grep '^\[extent cache memory\]' | sed 's/^\[extent cache memory\] /  /')
fi

{
  echo "pnfsgw scale benchmark, $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "binary: $PNFSGW"
  echo
  printf '%s\n' "${rows[@]}"
  echo
  echo "8 devices, concurrent 4 KiB random first writes, QD16 each, ${load_seconds} s, ${load_mib} MiB files (write IOPS):"
  echo "| one device alone | 8 together: each | sum | min/max | sum / alone | gateway CPU per request alone / 8 | MDS CPU per request, 8 | RSS after |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  printf '| %s | %s| %s | %s/%s | %s | %s / %s us | %s us | %s MiB |\n' "$alone" "$each" "$sum" "$min" "$max" \
    "$(awk -v s="$sum" -v a="$alone" 'BEGIN {printf "%.2fx", (a > 0 ? s / a : 0)}')" "$alone_us" "$each_us" "$mds_us" "$load_rss"
  echo "gateway counters after the load (all devices): $stats"
  echo
  echo "extent cache, 1M cached extents in one file (heap counted by a counting allocator):"
  echo "$extent_line"
} | tee "$out"
echo "scale: wrote $out" >&2
