#!/usr/bin/env bash
# Benchmark (not a test): the same volume data served three ways, the same fio NBD jobs on each.
#
#   (a) gateway, pNFS direct   `pnfsgw demo` (embedded MDS + gateway), data path pnfs
#   (b) gateway, MDS I/O       the same state directory again with `--data-path mds`
#   (c) nbdkit file            `nbdkit -f -p PORT -i 127.0.0.1 file volume.img` (the raw volume)
#
# Jobs (fio --ioengine=nbd, each bounded by --runtime seconds):
#   randread4k   4 KiB random read, QD16, over the prefilled half of the file
#   seqread1m    1 MiB sequential read, QD4, same range
#   randwrite4k  4 KiB random write, QD16, into written extents (the prefilled half)
#   firstwrite1m 1 MiB sequential first write, QD4, into fresh space (a quarter of the file
#                per gateway leg, so each leg writes never-written blocks; LAYOUTCOMMIT is in it)
# Prints a table of IOPS and MiB/s with ratios to nbdkit (and pNFS/MDS), and the server's
# CPU time per request (user+system of the serving process from /proc, all threads: less
# sensitive to a loaded machine than IOPS), and writes results.txt and chart.svg into the
# output directory.
#
# Usage: bench/run.sh [--runtime SECONDS] [--size SIZE_MIB] [--out DIR] [--keep]
# Environment: PNFSGW=path/to/pnfsgw (default: build with cargo --release).
set -euo pipefail

runtime=15
size_mib=1024
out=""
keep=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --runtime) runtime=$2; shift 2 ;;
    --size) size_mib=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $runtime =~ ^[0-9]+$ && $runtime -ge 1 && $runtime -le 600 ]] || { echo "bench: --runtime 1..600" >&2; exit 2; }
[[ $size_mib =~ ^[0-9]+$ && $size_mib -ge 64 && $((size_mib % 4)) -eq 0 ]] || { echo "bench: --size in MiB, >= 64, a multiple of 4" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
for tool in fio nbdkit ss; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run tests/setup.sh)" >&2; exit 2; }
done
if ! fio --enghelp=nbd >/dev/null 2>&1; then echo "bench: this fio has no nbd engine" >&2; exit 2; fi

if [[ -z ${PNFSGW:-} ]]; then
  (cd "$root" && cargo build --release -q -p pnfsgw)
  PNFSGW="${CARGO_TARGET_DIR:-$root/target}/release/pnfsgw"
fi
[[ -x $PNFSGW ]] || { echo "bench: no pnfsgw at $PNFSGW" >&2; exit 2; }

work=$(mktemp -d /var/tmp/pnfsgw-bench.XXXXXX)
out=${out:-$work/results}
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ $keep == 0 ]]; then rm -rf "$work/state" "$work"/*.log; fi
}
trap cleanup EXIT

free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + RANDOM % 20000))
    if [[ -z $(ss -Hltn "sport = :$p") ]]; then echo "$p"; return 0; fi
  done
  echo "bench: no free port" >&2; return 1
}

size=$((size_mib * 1024 * 1024))
half=$((size / 2))
quarter=$((size / 4))
volume_mib=$((size_mib * 2))
state="$work/state"
results="$out/results.txt"
: > "$results"

# CPU time (user + system, clock ticks) of process $1 so far, all threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
clk_tck=$(getconf CLK_TCK)

# fio with terse output; prints "iops mib_per_s cpu_us_per_request" of the read or write side
# (server CPU measured on $server_pid).
# usage: run_fio URI NAME RW BS QD OFFSET SIZE TIME_BASED(0/1)
run_fio() {
  local uri=$1 name=$2 rw=$3 bs=$4 qd=$5 offset=$6 len=$7 timed=$8 t line c0 c1
  local args=(--name="$name" --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" --iodepth="$qd"
              --offset="$offset" --size="$len" --runtime="$runtime" --output-format=terse
              --terse-version=3 --group_reporting --randrepeat=1 --norandommap)
  [[ $timed == 1 ]] && args+=(--time_based)
  c0=$(cpu_ticks "$server_pid")
  t=$(timeout $((runtime + 60)) fio "${args[@]}" 2>"$work/fio-$name.err") || {
    echo "FAIL FAIL FAIL"; return 0; }
  c1=$(cpu_ticks "$server_pid")
  line=$(printf '%s\n' "$t" | grep '^3;' | tail -1)
  # Terse v3: field 6/7/8 read total KiB, KiB/s, IOPS; 47/48/49 the same for writes.
  local bs_kib
  case $bs in *m) bs_kib=$(( ${bs%m} * 1024 )) ;; *k) bs_kib=${bs%k} ;; *) bs_kib=1 ;; esac
  case $rw in
    randread|read) awk -F';' -v c=$((c1 - c0)) -v hz="$clk_tck" -v b="$bs_kib" '{n = $6 / b; printf "%d %.1f %.1f\n", $8, $7/1024, (n > 0 ? c * 1e6 / hz / n : 0)}' <<<"$line" ;;
    *)             awk -F';' -v c=$((c1 - c0)) -v hz="$clk_tck" -v b="$bs_kib" '{n = $47 / b; printf "%d %.1f %.1f\n", $49, $48/1024, (n > 0 ? c * 1e6 / hz / n : 0)}' <<<"$line" ;;
  esac
}

# usage: jobs LEG URI FRESH_OFFSET
run_jobs() {
  local leg=$1 uri=$2 fresh=$3 r
  r=$(run_fio "$uri" randread4k randread 4k 16 0 "$half" 1);   echo "$leg randread4k $r" >> "$results"
  r=$(run_fio "$uri" seqread1m read 1m 4 0 "$half" 1);         echo "$leg seqread1m $r" >> "$results"
  r=$(run_fio "$uri" randwrite4k randwrite 4k 16 0 "$half" 1); echo "$leg randwrite4k $r" >> "$results"
  r=$(run_fio "$uri" firstwrite1m write 1m 4 "$fresh" "$quarter" 0); echo "$leg firstwrite1m $r" >> "$results"
  echo "bench: $leg done" >&2
}

fail_leg() {
  local leg=$1 why=$2 j
  echo "bench: leg $leg FAILED: $why" >&2
  for j in randread4k seqread1m randwrite4k firstwrite1m; do echo "$leg $j FAIL FAIL FAIL" >> "$results"; done
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
  [[ $rc == 0 ]] || echo "bench: pnfsgw demo exited with $rc (see the log)" >&2
}

# (a) pNFS direct; prefill the first half so reads and rewrites hit written extents.
if start_demo "$work/demo-pnfs.log" --data-path pnfs; then
  echo "bench: (a) $demo_uri: prefilling ${size_mib}/2 MiB" >&2
  timeout 600 fio --name=prefill --ioengine=nbd --uri="$demo_uri" --rw=write --bs=1m --iodepth=8 \
    --size="$half" --output-format=terse >/dev/null 2>"$work/prefill.err" || echo "bench: prefill failed" >&2
  run_jobs pnfs "$demo_uri" "$half"
  stop_demo
else
  fail_leg pnfs "pnfsgw demo did not start: $demo_err"
fi

# (b) The same file through MDS READ/WRITE.
if [[ -d $state ]] && start_demo "$work/demo-mds.log" --data-path mds; then
  run_jobs mds "$demo_uri" $((half + quarter))
  stop_demo
else
  fail_leg mds "pnfsgw demo --data-path mds did not start: ${demo_err:-no state from leg (a)}"
fi

# (c) nbdkit on the raw volume file (created by the demo, else a fresh one, prefilled).
vol="$state/volume.img"
if [[ ! -f $vol ]]; then
  mkdir -p "$state"; truncate -s "${volume_mib}M" "$vol"
  fio --name=prefill --filename="$vol" --rw=write --bs=1m --size="$half" --output-format=terse >/dev/null
fi
port=$(free_port)
nbdkit -f -p "$port" -i 127.0.0.1 file "$vol" 2>"$work/nbdkit.log" &
nbdkit_pid=$!
server_pid=$nbdkit_pid
pids+=("$nbdkit_pid")
uri="nbd://127.0.0.1:$port"
for i in $(seq 1 100); do fio --name=probe --ioengine=nbd --uri="$uri" --rw=read --size=4k --bs=4k \
  --output-format=terse >/dev/null 2>&1 && break; sleep 0.1; done
# Fresh space: the last quarter of the volume (the demo's MDS allocates from the start).
run_jobs nbdkit "$uri" $((volume_mib * 1024 * 1024 - quarter))
kill -TERM "$nbdkit_pid"; wait "$nbdkit_pid" 2>/dev/null || true

# Table and chart.
awk -v runtime="$runtime" -v size="$size_mib" '
  { iops[$1" "$2]=$3; mib[$1" "$2]=$4; cpu[$1" "$2]=$5 }
  function ratio(a, b) { return (a == "FAIL" || b == "FAIL" || b+0 == 0) ? "-" : sprintf("%.2fx", a/b) }
  END {
    printf "pnfsgw benchmark: %s MiB file, %s s per job\n\n", size, runtime
    printf "%-13s %-7s %10s %9s %10s %10s %12s\n", "job", "leg", "IOPS", "MiB/s", "vs nbdkit", "pnfs/mds", "cpu_us/req"
    n = split("randread4k seqread1m randwrite4k firstwrite1m", jobs, " ")
    for (j = 1; j <= n; j++) {
      job = jobs[j]
      for (l = 1; l <= 3; l++) {
        leg = (l == 1) ? "pnfs" : (l == 2) ? "mds" : "nbdkit"
        k = leg" "job
        vs = (leg == "nbdkit") ? "1.00x" : ratio(mib[k], mib["nbdkit "job])
        pm = (leg == "pnfs") ? ratio(mib[k], mib["mds "job]) : ""
        printf "%-13s %-7s %10s %9s %10s %10s %12s\n", job, leg, iops[k], mib[k], vs, pm, cpu[k]
      }
    }
    print "\ntargets (DESIGN 3): >= 1.0x nbdkit (reads, rewrite), >= 0.8x (first write), pnfs/mds >= 3x"
  }' "$results" | tee "$out/table.txt"

# SVG: grouped bars of MiB/s per job, one colour per leg, on a log-free linear scale per job.
awk -v out="$out/chart.svg" '
  { mib[$1" "$2]=($4 == "FAIL") ? 0 : $4 }
  END {
    n = split("randread4k seqread1m randwrite4k firstwrite1m", jobs, " ")
    split("pnfs mds nbdkit", legs, " "); split("#1f77b4 #ff7f0e #2ca02c", col, " ")
    W = 760; H = 80 + n * 110
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H > out
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n" > out
    printf "<text x=\"10\" y=\"22\" font-size=\"16\">pnfsgw: MiB/s per job (pNFS direct, MDS I/O, nbdkit file)</text>\n" > out
    for (l = 1; l <= 3; l++) {
      printf "<rect x=\"%d\" y=\"34\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"45\">%s</text>\n", 10 + (l-1)*120, col[l], 26 + (l-1)*120, legs[l] > out
    }
    for (j = 1; j <= n; j++) {
      max = 0
      for (l = 1; l <= 3; l++) if (mib[legs[l]" "jobs[j]] > max) max = mib[legs[l]" "jobs[j]]
      y0 = 70 + (j-1) * 110
      printf "<text x=\"10\" y=\"%d\" font-weight=\"bold\">%s</text>\n", y0 + 12, jobs[j] > out
      for (l = 1; l <= 3; l++) {
        v = mib[legs[l]" "jobs[j]]
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
