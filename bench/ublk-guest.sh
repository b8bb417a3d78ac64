#!/usr/bin/env bash
# Benchmark (not a test): ublk vs the kernel loop device, in ONE QEMU guest boot, the same
# data and the same fio jobs on every row (docs/requirements.md §Performance: ublk >= 0.8x
# loop). The rows split the gap into "ublk itself", "our frontend" and "the gateway's data
# path":
#
#   loop        `losetup` over a tmpfs file holding the data (run first and last; the ratios
#               use the mean of the two, which also shows the drift of a noisy machine)
#   null-qN     ublk, the cheapest server we can write on libublk (its synchronous queue loop,
#               requests answered in the completion handler, no data copied): what ublk
#               itself costs under this kernel (no zero copy in 6.12) and TCG. N queues.
#   direct-qN   the same server with one flat RAM buffer (one memcpy per request, as ours)
#   ours-qN     this crate's frontend (UblkDevice: executor, tokio bridge, Disk API) over a
#               flat RAM disk (ublk/tests/common FlatRamDisk, the same one copy per request):
#               direct-qN minus ours-qN = our frontend
#   *-qNp       the same with every queue thread pinned to its queue's CPUs (libublk's
#               affinity; our default is unpinned, see UblkParams::pin_queue_threads)
#   stack       the embedded MDS (`pnfsgw mds`, volume file on tmpfs) + `pnfsgw export --ublk`,
#               pNFS direct path (default queues/depth of the CLI): ours minus stack = the
#               gateway's data path. Its O_DIRECT reads of a tmpfs file go through io_uring
#               worker threads (measured: an iou-wrk thread busy per request), a hop per request.
#   stack-q2    the same gateway from a configuration file with 2 ublk queues
#   stack-brd   the same as stack with the volume on a RAM block device (brd), which O_DIRECT reads
#               without a worker thread, as a real LUN would
#
# Jobs (fio libaio, direct=1, read only, time based, RUNTIME seconds each):
#   4k   4 KiB random read, QD16 (IOPS)        1M   1 MiB sequential read, QD4 (MiB/s)
# Each job also reports the ublk server's CPU time per request (user+system of the server
# process from /proc, all threads, in µs): less sensitive to a loaded host than IOPS.
# Under TCG absolute numbers are low and noisy; compare ratios within one run.
#
# Usage: bench/ublk-guest.sh [--runtime SECONDS] [--size SIZE_MIB] [--cpus N]
#                            [--rows "loop null-q1 ..."] [--out FILE]
# Environment: PNFSGW=path/to/pnfsgw (default: cargo build --release -p pnfsgw; only built
# when the rows include `stack`).
set -euo pipefail

runtime=6
size_mib=256
cpus=2
rows="loop null-q1 direct-q1 ours-q1 direct-q2 ours-q2 ours-q2p stack stack-q2 stack-brd loop"
out=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--runtime) runtime=$2; shift 2 ;;
	--size) size_mib=$2; shift 2 ;;
	--cpus) cpus=$2; shift 2 ;;
	--rows) rows=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '2,34p' "$0"; exit 0 ;;
	*) echo "ublk-guest: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ $runtime =~ ^[0-9]+$ && $runtime -ge 1 && $runtime -le 120 ]] || { echo "ublk-guest: --runtime 1..120" >&2; exit 2; }
[[ $size_mib =~ ^[0-9]+$ && $size_mib -ge 64 && $size_mib -le 512 ]] || { echo "ublk-guest: --size 64..512 (MiB)" >&2; exit 2; }
[[ $cpus =~ ^[1-4]$ ]] || { echo "ublk-guest: --cpus 1..4" >&2; exit 2; }
for r in $rows; do
	[[ $r =~ ^(loop|stack|stack-q2|stack-brd|(null|direct|ours)-q[1-4]p?)$ ]] || { echo "ublk-guest: unknown row $r" >&2; exit 2; }
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
# The RAM servers are helpers in ublk/tests/guest.rs, built with optimisations (a debug build
# of our frontend would measure the debug build).
SERVER=$(cargo test --release -q -p pnfs-ublk --test guest --no-run --message-format=json 2>/dev/null |
	sed -n 's/.*"executable":"\([^"]*\/guest-[^"]*\)".*/\1/p' | tail -1)
[[ -x $SERVER ]] || { echo "ublk-guest: could not build the ublk guest test binary" >&2; exit 1; }
if [[ " $rows " == *" stack"* && -z ${PNFSGW:-} ]]; then
	cargo build --release -q -p pnfsgw
	PNFSGW=$CARGO_TARGET_DIR/release/pnfsgw
fi
PNFSGW=${PNFSGW:-/nonexistent}
[[ " $rows " != *" stack"* || -x $PNFSGW ]] || { echo "ublk-guest: no pnfsgw at $PNFSGW" >&2; exit 2; }
cargo build -q -p pnfs-testbed --bin pnfs-guest
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The guest script: $-expansions escaped with \ run in the guest.
"$CARGO_TARGET_DIR/debug/pnfs-guest" --timeout 900 --memory 2048 --cpus "$cpus" -c "
require_module ublk_drv loop
T=/run/bench; mkdir -p \$T
step 'data: $size_mib MiB of random bytes on tmpfs, a loop device over it'
head -c ${size_mib}M /dev/urandom >\$T/img
LOOP=\$(losetup -f --show \$T/img)
PID=
# clock ticks of user+system time of process \$1, all threads (0 without a process)
ticks() { if [ -n \"\$1\" ]; then awk '{ print \$14 + \$15 }' /proc/\$1/stat; else echo 0; fi; }
HZ=\$(getconf CLK_TCK)
# 'tid comm ticks' per thread of process \$1 (nothing without a process)
threads() {
	[ -n \"\$1\" ] || return 0
	for t in /proc/\$1/task/*; do
		echo \"\${t##*/} \$(tr ' ' _ <\$t/comm) \$(awk '{ print \$14 + \$15 }' \$t/stat 2>/dev/null || echo 0)\"
	done
}
# job NAME DEV FIO-ARGS...: one fio run; prints 'RES NAME iops kib_s cpu_us_per_request'
job() {
	local name=\$1 dev=\$2 t0 t1 line; shift 2
	t0=\$(ticks \"\$PID\")
	threads \"\$PID\" >\$T/threads0
	line=\$(fio --name=b --filename=\$dev --direct=1 --ioengine=libaio --readonly --time_based \
		--runtime=$runtime --size=${size_mib}M --output-format=terse --terse-version=3 \"\$@\")
	t1=\$(ticks \"\$PID\")
	threads \"\$PID\" >\$T/threads1
	# where the server's CPU went: ticks per thread name (threads that ran)
	echo \"threads \$name: \$(awk 'NR == FNR { a[\$1] = \$3; next } { d = \$3 - a[\$1]; if (d > 0) s[\$2] += d } END { for (c in s) printf \"%s=%d \", c, s[c] }' \$T/threads0 \$T/threads1)\"
	echo \"\$line\" | awk -F';' -v n=\$name -v d=\$((t1 - t0)) -v hz=\$HZ -v rt=$runtime \
		'{ req = \$8 * rt; printf \"RES %s %s %s %.0f\\n\", n, \$8, \$7, (req > 0 && d > 0) ? d * 1e6 / hz / req : 0 }'
}
row() { job \$1-4k \$2 --rw=randread --bs=4k --iodepth=16; job \$1-1M \$2 --rw=read --bs=1M --iodepth=4; }
# serve ROW ENV...: starts a RAM server of ublk/tests/guest.rs; sets PID and DEV
serve() {
	local name=\$1 test q pin=; shift
	case \$name in
		null-*|direct-*) test=serve_direct_for_bench ;;
		*) test=serve_ramdisk_for_guest ;;
	esac
	q=\${name##*-q}
	case \$q in *p) pin=UBLK_PIN=1; q=\${q%p} ;; esac
	env \"\$@\" UBLK_QUEUES=\$q \$pin '$SERVER' \$test --ignored --exact --nocapture >\$T/server.log 2>&1 &
	PID=\$!
	# (libtest may print its 'test ... ' prefix on the same line)
	wait_for 120 grep -q 'UBLK_READY ' \$T/server.log || { cat \$T/server.log; false; }
	DEV=\$(sed -n 's/.*UBLK_READY //p' \$T/server.log)
	limits
}
# the request size limits of \$DEV (does a 1 MiB read stay one ublk request?)
limits() {
	local q=/sys/block/\${DEV#/dev/}/queue
	echo \"limits \$DEV: max_sectors_kb \$(cat \$q/max_sectors_kb) max_hw_sectors_kb \$(cat \$q/max_hw_sectors_kb) max_segments \$(cat \$q/max_segments) max_segment_size \$(cat \$q/max_segment_size) hw queues \$(ls /sys/block/\${DEV#/dev/}/mq | wc -l)\"
}
stop() {
	kill -TERM \$PID; wait \$PID || { cat \$T/server.log; false; }
	grep -q 'stopped cleanly' \$T/server.log
	PID=
}
fill() {
	dd if=\$T/img of=\$DEV bs=1M oflag=direct conv=fsync status=none
	cmp -n \$(stat -c %s \$T/img) \$T/img \$DEV
}
n=0
for r in $rows; do
	n=\$((n + 1))
	step \"row \$r\"
	case \$r in
	loop) row loop-\$n \$LOOP ;;
	null-*) serve \$r UBLK_BENCH_DIRECT=null UBLK_BENCH_BYTES=\$(stat -c %s \$T/img); row \$r \$DEV; stop ;;
	direct-*) serve \$r UBLK_BENCH_DIRECT=ram UBLK_BENCH_BYTES=\$(stat -c %s \$T/img); fill; row \$r \$DEV; stop ;;
	ours-*) serve \$r UBLK_GUEST_SERVE=1 UBLK_BENCH_FLAT=\$(stat -c %s \$T/img); fill; row \$r \$DEV; stop ;;
	stack | stack-q2 | stack-brd)
		if [ \$r != stack-brd ]; then
			VOL=\$T/vol.img
			truncate -s $((size_mib + 64))M \$VOL
		else
			modprobe brd rd_nr=1 rd_size=$(((size_mib + 64) * 1024))
			VOL=/dev/ram0
		fi
		'$PNFSGW' mds --listen 127.0.0.1:20490 --state \$T/mds --volume \$VOL >\$T/mds.log 2>&1 &
		MDS=\$!
		wait_for 60 test -S \$T/mds/admin.sock
		RUST_LOG=warn '$PNFSGW' export --mds 127.0.0.1:20490 --path /bench.img --nbd 127.0.0.1:10809 \
			--create ${size_mib}M --ublk --volume \$VOL --control \$T/c.sock >\$T/gw.out 2>\$T/gw.log &
		PID=\$!
		wait_for 120 grep -q '^/dev/ublkb' \$T/gw.out || { cat \$T/gw.log; false; }
		DEV=\$(grep '^/dev/ublkb' \$T/gw.out)
		if [ \$r = stack-q2 ]; then
			# the file exists now: the same gateway from a configuration file, 2 queues
			kill -TERM \$PID; wait \$PID
			wait_for 30 test ! -e \$DEV
			printf '%s\\n' '[mds]' 'addresses = [\"127.0.0.1:20490\"]' '[volumes]' \"search = [\\\"\$VOL\\\"]\" \
				'[nbd]' 'tcp = [\"127.0.0.1:10809\"]' '[control]' \"socket = \\\"\$T/c.sock\\\"\" \
				'[[device]]' 'name = \"bench\"' 'path = \"/bench.img\"' 'frontends = [\"ublk\"]' 'queues = 2' >\$T/gw.toml
			RUST_LOG=warn '$PNFSGW' run --config \$T/gw.toml >\$T/gw.out 2>\$T/gw.log &
			PID=\$!
			wait_for 120 sh -c 'ls /dev/ublkb* >/dev/null 2>&1' || { cat \$T/gw.log; false; }
			DEV=\$(ls /dev/ublkb* | head -1)
		fi
		limits
		fill
		row \$r \$DEV
		kill -TERM \$PID; wait \$PID; PID=
		kill -TERM \$MDS; wait \$MDS
		rm -rf \$T/vol.img \$T/mds
		if [ \$r = stack-brd ]; then rmmod brd; fi
		;;
	esac
done
losetup -d \$LOOP
" | tee "$log"

# The table: one line per row, ratios to the mean of the loop rows.
table=$(sed -n 's/.*\] RES /RES /p' "$log" | awk '
	{
		n_ = split($2, p, "-"); job = p[n_]; name = substr($2, 1, length($2) - length(job) - 1)
		if (!(name in seen)) { seen[name] = 1; order[++n] = name }
		if (job == "4k") v4[name] = $3; else v1[name] = $4 / 1024
		if (job == "4k") c4[name] = $5; else c1[name] = $5
		if (name ~ /^loop/) { if (job == "4k") { l4 += $3; k4++ } else { l1 += $4 / 1024; k1++ } }
	}
	END {
		if (k4 == 0 || k1 == 0) exit 1
		l4 /= k4; l1 /= k1
		printf "| row        | 4k randread QD16 IOPS | /loop | µs CPU/req | 1M seqread QD4 MiB/s | /loop | µs CPU/req |\n"
		printf "| ---------- | --------------------- | ----- | ---------- | -------------------- | ----- | ---------- |\n"
		for (i = 1; i <= n; i++) {
			r = order[i]
			a = r ~ /^loop/ ? "-" : c4[r]; b = r ~ /^loop/ ? "-" : c1[r]
			printf "| %-10s | %21.0f | %5.2f | %10s | %20.1f | %5.2f | %10s |\n", r, v4[r], v4[r] / l4, a, v1[r], v1[r] / l1, b
		}
	}') || true
[[ -n $table ]] || { echo "ublk-guest: no results" >&2; exit 1; }
{
	echo "ublk-guest: $(date -u +%Y-%m-%dT%H:%MZ), ${size_mib} MiB, ${runtime} s per job, ${cpus} guest CPUs, $(git -C "$root" rev-parse --short HEAD)"
	echo "$table"
} | { if [[ -n $out ]]; then tee "$out"; else cat; fi; }
