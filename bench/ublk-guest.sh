#!/usr/bin/env bash
# Benchmark (not a test): /dev/ublkbN of the real stack vs a kernel loop device over the same
# data, in one QEMU guest (DESIGN §3 target: ublk >= 0.8x loop).
#
#   ublk  the embedded MDS (`pnfsgw mds`, volume file on tmpfs) + `pnfsgw export --ublk` on a
#         file of SIZE MiB, pNFS direct path (the gateway reads the volume file itself)
#   loop  `losetup` over a tmpfs file holding the same bytes (written through ublk first, then
#         copied out of /dev/ublkbN, and compared)
#
# Jobs (fio libaio, direct=1, time based, RUNTIME seconds each, read only):
#   randread4k  4 KiB random read, QD16       seqread1m  1 MiB sequential read, QD4
# Prints a table with IOPS / MiB/s and the ublk/loop ratio. Both sides are RAM-backed, so this
# measures the data path's overhead; under TCG absolute numbers are low, only ratios count.
#
# Usage: bench/ublk-guest.sh [--runtime SECONDS] [--size SIZE_MIB] [--out FILE]
# Environment: PNFSGW=path/to/pnfsgw (default: cargo build --release -p pnfsgw).
set -euo pipefail

runtime=15
size_mib=256
out=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--runtime) runtime=$2; shift 2 ;;
	--size) size_mib=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '2,17p' "$0"; exit 0 ;;
	*) echo "ublk-guest: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ $runtime =~ ^[0-9]+$ && $runtime -ge 1 && $runtime -le 300 ]] || { echo "ublk-guest: --runtime 1..300" >&2; exit 2; }
[[ $size_mib =~ ^[0-9]+$ && $size_mib -ge 64 && $size_mib -le 512 ]] || { echo "ublk-guest: --size 64..512 (MiB)" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
if [[ -z ${PNFSGW:-} ]]; then
	cargo build --release -q -p pnfsgw
	PNFSGW=$CARGO_TARGET_DIR/release/pnfsgw
fi
[[ -x $PNFSGW ]] || { echo "ublk-guest: no pnfsgw at $PNFSGW" >&2; exit 2; }
cargo build -q -p pnfs-testbed --bin pnfs-guest
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The guest script: $-expansions escaped with \ run in the guest.
"$CARGO_TARGET_DIR/debug/pnfs-guest" --timeout 1200 --memory 2048 -c "
step 'embedded MDS + pnfsgw export --ublk ($size_mib MiB file)'
require_module ublk_drv loop
T=/run/bench; mkdir -p \$T
truncate -s $((size_mib + 64))M \$T/vol.img
'$PNFSGW' mds --listen 127.0.0.1:20490 --state \$T/mds --volume \$T/vol.img >\$T/mds.log 2>&1 &
MDS=\$!
wait_for 60 test -S \$T/mds/admin.sock
RUST_LOG=warn '$PNFSGW' export --mds 127.0.0.1:20490 --path /bench.img --nbd 127.0.0.1:10809 \
	--create ${size_mib}M --ublk --volume \$T/vol.img --control \$T/c.sock >\$T/gw.out 2>\$T/gw.log &
GW=\$!
wait_for 120 grep -q '^/dev/ublkb' \$T/gw.out || { cat \$T/gw.log; false; }
DEV=\$(grep '^/dev/ublkb' \$T/gw.out)

step 'the same data on ublk and on a loop device'
head -c ${size_mib}M /dev/urandom >\$T/src
dd if=\$T/src of=\$DEV bs=1M oflag=direct conv=fsync status=none
rm \$T/src
dd if=\$DEV of=\$T/img bs=1M iflag=direct status=none
LOOP=\$(losetup -f --show \$T/img)
cmp \$DEV \$LOOP

step 'fio'
# terse v3: field 7 = read bandwidth KiB/s, field 8 = read IOPS
run() { fio --name=b --filename=\$1 --direct=1 --ioengine=libaio --readonly --time_based \
	--runtime=$runtime --size=${size_mib}M --output-format=terse --terse-version=3 \"\${@:3}\" |
	cut -d';' -f\$2; }
U4=\$(run \$DEV 8 --rw=randread --bs=4k --iodepth=16)
L4=\$(run \$LOOP 8 --rw=randread --bs=4k --iodepth=16)
U1=\$(run \$DEV 7 --rw=read --bs=1M --iodepth=4)
L1=\$(run \$LOOP 7 --rw=read --bs=1M --iodepth=4)
ratio() { awk -v a=\$1 -v b=\$2 'BEGIN { printf \"%.2f\", a / b }'; }
echo 'RESULT | job                | ublk (pNFS direct) | loop       | ublk/loop |'
echo 'RESULT | ------------------ | ------------------ | ---------- | --------- |'
printf 'RESULT | 4k randread QD16   | %12s IOPS | %5s IOPS | %9s |\n' \$U4 \$L4 \$(ratio \$U4 \$L4)
printf 'RESULT | 1M seqread QD4     | %9s MiB/s | %4s MiB/s | %9s |\n' \$((U1 / 1024)) \$((L1 / 1024)) \$(ratio \$U1 \$L1)

step 'stop'
losetup -d \$LOOP
kill -TERM \$GW; wait \$GW
kill -TERM \$MDS; wait \$MDS
" | tee "$log"

table=$(sed -n 's/.*RESULT //p' "$log")
[[ -n $table ]] || { echo "ublk-guest: no results" >&2; exit 1; }
{
	echo "ublk-guest: $(date -u +%Y-%m-%dT%H:%MZ), ${size_mib} MiB, ${runtime} s per job, $(basename "$PNFSGW") $(git -C "$root" rev-parse --short HEAD)"
	echo "$table"
} | { if [[ -n $out ]]; then tee "$out"; else cat; fi; }
