#!/usr/bin/env bash
# Benchmark (not a test): the same volume data served several ways, the same fio jobs on each.
#
#   limit      fio on the volume file itself: --direct=1 --ioengine=io_uring (the physical
#              limit of the volume on this machine; no server, no network)
#   pnfs       `pnfsgw demo` (embedded MDS + gateway), data path pnfs (O_DIRECT volume I/O)
#   mds        the same state directory again with `--data-path mds`
#   nbdkit-nc  `nbdkit file volume.img cache=none` (the raw volume, page cache avoided)
#   nbdkit     `nbdkit file volume.img` (the raw volume, page cache)
#
# The volume file is filled with data first (O_DIRECT reads of a sparse file's holes never
# reach the disk), then the file's first half is written through the gateway.
#
# Jobs (fio --ioengine=nbd for the servers, each bounded by --runtime seconds):
#   randread4k    4 KiB random read, QD16, over the prefilled half of the file
#   randread4k_x4 the same with numjobs=4 (four NBD connections, QD16 each)
#   seqread1m     1 MiB sequential read, QD4, same range
#   randwrite4k   4 KiB random write, QD16, into written extents (the prefilled half)
#   firstwrite1m  1 MiB sequential first write, QD4, into fresh space (a quarter of the file
#                 per gateway leg, so each leg writes never-written blocks; LAYOUTCOMMIT is in
#                 it; the limit and nbdkit legs write the volume's last quarter)
# Prints a table of IOPS and MiB/s with ratios to the limit, to nbdkit cache=none and pNFS/MDS,
# and CPU time per request: for server legs the user+system time of the serving process from
# /proc (all threads) over the job, divided by the completed requests; for the limit leg fio's
# own user+system time (the cost of the I/O in the kernel plus fio's submission loop). CPU per
# request is less sensitive to a loaded machine than IOPS. Writes results.txt, table.txt and
# chart.svg into the output directory.
#
# Usage: bench/run.sh [--runtime SECONDS] [--size SIZE_MIB] [--out DIR] [--keep]
#                     [--legs LIST] [--jobs LIST]
#   --legs  comma-separated subset of limit,pnfs,mds,nbdkit-nc,nbdkit (default: all)
#   --jobs  comma-separated subset of the jobs above (default: all)
# Environment: PNFSGW=path/to/pnfsgw (default: build with cargo --release).
set -euo pipefail

all_legs="limit pnfs mds nbdkit-nc nbdkit"
all_jobs="randread4k randread4k_x4 seqread1m randwrite4k firstwrite1m"
runtime=15
size_mib=1024
out=""
keep=0
legs=$all_legs
jobs=$all_jobs
while [[ $# -gt 0 ]]; do
  case $1 in
    --runtime) runtime=$2; shift 2 ;;
    --size) size_mib=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --legs) legs=${2//,/ }; shift 2 ;;
    --jobs) jobs=${2//,/ }; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $runtime =~ ^[0-9]+$ && $runtime -ge 1 && $runtime -le 600 ]] || { echo "bench: --runtime 1..600" >&2; exit 2; }
[[ $size_mib =~ ^[0-9]+$ && $size_mib -ge 64 && $((size_mib % 4)) -eq 0 ]] || { echo "bench: --size in MiB, >= 64, a multiple of 4" >&2; exit 2; }
for l in $legs; do [[ " $all_legs " == *" $l "* ]] || { echo "bench: unknown leg $l (legs: $all_legs)" >&2; exit 2; }; done
for j in $jobs; do [[ " $all_jobs " == *" $j "* ]] || { echo "bench: unknown job $j (jobs: $all_jobs)" >&2; exit 2; }; done
want_leg() { [[ " $legs " == *" $1 "* ]]; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
for tool in fio nbdkit ss; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run tests/setup.sh)" >&2; exit 2; }
done
if ! fio --enghelp=nbd >/dev/null 2>&1; then echo "bench: this fio has no nbd engine" >&2; exit 2; fi

if want_leg pnfs || want_leg mds; then
  if [[ -z ${PNFSGW:-} ]]; then
    (cd "$root" && cargo build --release -q -p pnfsgw)
    PNFSGW="${CARGO_TARGET_DIR:-$root/target}/release/pnfsgw"
  fi
  [[ -x $PNFSGW ]] || { echo "bench: no pnfsgw at $PNFSGW" >&2; exit 2; }
fi

work=$(mktemp -d /var/tmp/pnfsgw-bench.XXXXXX)
out=${out:-$work/results}
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do [[ -n $p ]] && wait "$p" 2>/dev/null || true; done
  if [[ $keep == 0 ]]; then rm -rf "$work/state" "$work"/*.log; fi
}
trap cleanup EXIT

bench_name=bench
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

size=$((size_mib * 1024 * 1024))
half=$((size / 2))
quarter=$((size / 4))
volume_mib=$((size_mib * 2))
volume_bytes=$((volume_mib * 1024 * 1024))
state="$work/state"
vol="$state/volume.img"
results="$out/results.txt"
: > "$results"

# CPU time (user + system, clock ticks) of process $1 so far, all threads.
cpu_ticks() {
  if [[ -z $1 ]]; then echo 0; return; fi
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
clk_tck=$(getconf CLK_TCK)

# Machine load while benchmarking: the 1-minute load average at each job's end.
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# fio with terse output; prints "iops mib_per_s cpu_us_per_request load" of the read or
# write side. With $server_pid set, the CPU is that process's (over the job); without, fio's
# own user+system time.
# usage: run_fio TARGET NAME RW BS QD OFFSET SIZE TIME_BASED(0/1) NUMJOBS
#   TARGET: nbd://... (fio nbd engine) or a file path (O_DIRECT io_uring on the file)
run_fio() {
  local target=$1 name=$2 rw=$3 bs=$4 qd=$5 offset=$6 len=$7 timed=$8 numjobs=$9 t line c0 c1
  local args=(--name="$name" --rw="$rw" --bs="$bs" --iodepth="$qd" --numjobs="$numjobs"
              --offset="$offset" --size="$len" --runtime="$runtime" --output-format=terse
              --terse-version=3 --group_reporting --randrepeat=1 --norandommap)
  case $target in
    nbd://*) args+=(--ioengine=nbd --uri="$target") ;;
    *) args+=(--ioengine=io_uring --direct=1 --filename="$target") ;;
  esac
  [[ $timed == 1 ]] && args+=(--time_based)
  local timefile="$work/fio-$name.time"
  c0=$(cpu_ticks "$server_pid")
  t=$(timeout $((runtime + 60)) /usr/bin/time -o "$timefile" -f '%U %S' fio "${args[@]}" \
      2>"$work/fio-$name.err") || { echo "FAIL FAIL FAIL -"; return 0; }
  c1=$(cpu_ticks "$server_pid")
  local ticks=$((c1 - c0))
  if [[ -z $server_pid ]]; then
    ticks=$(awk -v hz="$clk_tck" '{printf "%d", ($1 + $2) * hz}' "$timefile")
  fi
  line=$(printf '%s\n' "$t" | grep '^3;' | tail -1)
  # Terse v3: field 6/7/8 read total KiB, KiB/s, IOPS; 47/48/49 the same for writes.
  local bs_kib
  case $bs in *m) bs_kib=$(( ${bs%m} * 1024 )) ;; *k) bs_kib=${bs%k} ;; *) bs_kib=1 ;; esac
  local f=6
  case $rw in randread|read) f=6 ;; *) f=47 ;; esac
  awk -F';' -v c="$ticks" -v hz="$clk_tck" -v b="$bs_kib" -v f="$f" -v load="$(loadavg)" \
    '{n = $f / b; printf "%d %.1f %.1f %s\n", $(f+2), $(f+1)/1024, (n > 0 ? c * 1e6 / hz / n : 0), load}' <<<"$line"
}

# usage: run_jobs LEG TARGET FRESH_OFFSET
run_jobs() {
  local leg=$1 target=$2 fresh=$3 r j
  for j in $jobs; do
    case $j in
      randread4k)    r=$(run_fio "$target" "$leg-$j" randread 4k 16 0 "$half" 1 1) ;;
      randread4k_x4) r=$(run_fio "$target" "$leg-$j" randread 4k 16 0 "$half" 1 4) ;;
      seqread1m)     r=$(run_fio "$target" "$leg-$j" read 1m 4 0 "$half" 1 1) ;;
      randwrite4k)   r=$(run_fio "$target" "$leg-$j" randwrite 4k 16 0 "$half" 1 1) ;;
      firstwrite1m)  r=$(run_fio "$target" "$leg-$j" write 1m 4 "$fresh" "$quarter" 0 1) ;;
    esac
    echo "$leg $j $r" >> "$results"
  done
  echo "bench: $leg done" >&2
}

fail_leg() {
  local leg=$1 why=$2 j
  echo "bench: leg $leg FAILED: $why" >&2
  for j in $jobs; do echo "$leg $j FAIL FAIL FAIL -" >> "$results"; done
}

# Starts `pnfsgw demo` with extra flags; sets demo_pid and demo_uri, or returns 1.
start_demo() {
  local log=$1; shift
  local port; port=$(free_port)
  "$PNFSGW" demo --state-dir "$state" --listen "127.0.0.1:$port" --size "${size_mib}M" \
    --volume-size "${volume_mib}M" "$@" >"$log.out" 2>"$log" &
  demo_pid=$!
  server_pid=$demo_pid
  pids+=("$demo_pid")
  local deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    if grep -q '^pnfsgw demo: ready: ' "$log.out" 2>/dev/null; then
      demo_uri=$(sed -n 's/^pnfsgw demo: ready: //p' "$log.out" | head -1)
      return 0
    fi
    if ! kill -0 "$demo_pid" 2>/dev/null; then
      wait "$demo_pid" || true
      demo_err=$(tail -3 "$log" | tr '\n' ' ')
      return 1
    fi
    sleep 0.2
  done
  demo_err="no ready line within 120 s"
  return 1
}

stop_demo() {
  kill -TERM "$demo_pid"
  local rc=0
  wait "$demo_pid" || rc=$?
  pids=("${pids[@]/$demo_pid}")
  server_pid=""
  [[ $rc == 0 ]] || echo "bench: pnfsgw demo exited with $rc (see the log)" >&2
}

echo "bench: load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" > "$out/load.txt"

# The volume, written with data end to end (the demo keeps an existing volume file).
mkdir -p "$state"
echo "bench: filling the ${volume_mib} MiB volume with data" >&2
timeout 900 fio --name=fill --filename="$vol" --rw=write --bs=1m --iodepth=8 --ioengine=io_uring \
  --direct=1 --size="$volume_bytes" --output-format=terse >/dev/null 2>"$work/fill.err" \
  || { echo "bench: filling the volume failed: $(tail -2 "$work/fill.err")" >&2; exit 1; }
server_pid=""

# pNFS direct; prefill the file's first half so reads and rewrites hit written extents.
prefilled=0
if want_leg pnfs || want_leg mds; then
  if start_demo "$work/demo-pnfs.log" --data-path pnfs; then
    echo "bench: pnfs $demo_uri: prefilling ${size_mib}/2 MiB" >&2
    timeout 600 fio --name=prefill --ioengine=nbd --uri="$demo_uri" --rw=write --bs=1m --iodepth=8 \
      --size="$half" --output-format=terse >/dev/null 2>"$work/prefill.err" && prefilled=1 \
      || echo "bench: prefill failed" >&2
    if want_leg pnfs; then run_jobs pnfs "$demo_uri" "$half"; fi
    stop_demo
  else
    want_leg pnfs && fail_leg pnfs "pnfsgw demo did not start: $demo_err"
  fi
fi

# The same file through MDS READ/WRITE.
if want_leg mds; then
  if [[ $prefilled == 1 ]] && start_demo "$work/demo-mds.log" --data-path mds; then
    run_jobs mds "$demo_uri" $((half + quarter))
    stop_demo
  else
    fail_leg mds "pnfsgw demo --data-path mds did not start: ${demo_err:-the prefill failed}"
  fi
fi

# The physical limit: fio straight on the volume file (the file's data sits at the volume's
# start: the demo's MDS allocates from there). Fresh space: the volume's last quarter.
if want_leg limit; then
  server_pid=""
  run_jobs limit "$vol" $((volume_bytes - quarter))
fi

# nbdkit on the raw volume file, without and with the page cache.
run_nbdkit() {
  local leg=$1; shift
  local port; port=$(free_port)
  nbdkit -f -p "$port" -i 127.0.0.1 file "$vol" "$@" 2>"$work/$leg.log" &
  local nbdkit_pid=$!
  server_pid=$nbdkit_pid
  pids+=("$nbdkit_pid")
  local uri="nbd://127.0.0.1:$port" i
  for i in $(seq 1 100); do fio --name=probe --ioengine=nbd --uri="$uri" --rw=read --size=4k --bs=4k \
    --output-format=terse >/dev/null 2>&1 && break; sleep 0.1; done
  run_jobs "$leg" "$uri" $((volume_bytes - quarter))
  kill -TERM "$nbdkit_pid"; wait "$nbdkit_pid" 2>/dev/null || true
  pids=("${pids[@]/$nbdkit_pid}")
  server_pid=""
}
if want_leg nbdkit-nc; then run_nbdkit nbdkit-nc cache=none; fi
if want_leg nbdkit; then run_nbdkit nbdkit; fi
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/load.txt"

# Table and chart.
awk -v runtime="$runtime" -v size="$size_mib" -v jobs="$jobs" -v legs="$legs" -v ncpu="$(nproc)" '
  { iops[$1" "$2]=$3; mib[$1" "$2]=$4; cpu[$1" "$2]=$5; load[$1" "$2]=$6 }
  function ratio(a, b) { return (a == "" || b == "" || a == "FAIL" || b == "FAIL" || b+0 == 0) ? "-" : sprintf("%.2fx", a/b) }
  END {
    printf "pnfsgw benchmark: %s MiB file, %s s per job, %s CPUs\n\n", size, runtime, ncpu
    printf "%-13s %-9s %9s %9s %9s %9s %9s %11s %6s\n", "job", "leg", "IOPS", "MiB/s", "vs limit", "vs nc", "pnfs/mds", "cpu_us/req", "load"
    n = split(jobs, J, " "); m = split(legs, L, " ")
    for (j = 1; j <= n; j++) {
      job = J[j]
      for (l = 1; l <= m; l++) {
        leg = L[l]; k = leg" "job
        vl = ratio(mib[k], mib["limit "job])
        vn = ratio(mib[k], mib["nbdkit-nc "job])
        pm = (leg == "pnfs") ? ratio(mib[k], mib["mds "job]) : ""
        printf "%-13s %-9s %9s %9s %9s %9s %9s %11s %6s\n", job, leg, iops[k], mib[k], vl, vn, pm, cpu[k], load[k]
      }
    }
    if (index(" "jobs" ", " randread4k ") && index(" "jobs" ", " randread4k_x4 ")) {
      printf "\n4 connections / 1 (randread4k_x4 / randread4k):"
      for (l = 1; l <= m; l++) printf " %s %s", L[l], ratio(mib[L[l]" randread4k_x4"], mib[L[l]" randread4k"])
      printf "\n"
    }
    print "\ncpu_us/req: server process user+system per request (limit: fio itself); load: 1-min load average at the job end"
    print "targets (docs/requirements.md, Performance): pnfs >= 0.8x limit on 4K random read/write QD16, >= 0.95x on 1M seq read QD4,"
    print "  >= 0.7x on 1M first write; >= 1.5x nbdkit cache=none; 4 connections >= 1.5x one; pnfs/mds >= 3x"
  }' "$results" | tee "$out/table.txt"
cat "$out/load.txt" | tee -a "$out/table.txt"

# SVG: grouped bars of MiB/s per job, one colour per leg, a linear scale per job.
awk -v out="$out/chart.svg" -v jobs="$jobs" -v legs="$legs" '
  { mib[$1" "$2]=($4 == "FAIL") ? 0 : $4 }
  END {
    n = split(jobs, J, " "); m = split(legs, L, " ")
    split("#7f7f7f #1f77b4 #ff7f0e #2ca02c #98df8a", col, " ")
    W = 760; H = 80 + n * (30 + m * 26)
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H > out
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n" > out
    printf "<text x=\"10\" y=\"22\" font-size=\"16\">pnfsgw: MiB/s per job (volume limit, pNFS direct, MDS I/O, nbdkit)</text>\n" > out
    for (l = 1; l <= m; l++) {
      printf "<rect x=\"%d\" y=\"34\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"45\">%s</text>\n", 10 + (l-1)*120, col[l], 26 + (l-1)*120, L[l] > out
    }
    for (j = 1; j <= n; j++) {
      max = 0
      for (l = 1; l <= m; l++) if (mib[L[l]" "J[j]] > max) max = mib[L[l]" "J[j]]
      y0 = 70 + (j-1) * (30 + m * 26)
      printf "<text x=\"10\" y=\"%d\" font-weight=\"bold\">%s</text>\n", y0 + 12, J[j] > out
      for (l = 1; l <= m; l++) {
        v = mib[L[l]" "J[j]]
        w = (max > 0) ? int(560 * v / max) : 0
        y = y0 + 20 + (l-1) * 26
        printf "<rect x=\"80\" y=\"%d\" width=\"%d\" height=\"20\" fill=\"%s\"/>\n", y, w, col[l] > out
        label = (v > 0) ? sprintf("%.1f MiB/s", v) : "failed"
        printf "<text x=\"%d\" y=\"%d\">%s</text>\n", 86 + w, y + 15, label > out
      }
    }
    print "</svg>" > out
  }' "$results"
echo "bench: results in $out (results.txt, table.txt, chart.svg)" >&2
