#!/usr/bin/env bash
# ublk vs the kernel loop device, same guest, same data (DESIGN §3 target: ublk >= 0.8x loop).
# One guest boot: the ublk test server (a 257 MiB RAM disk in a user process, see
# ublk/tests/guest.rs) and a loop device over a tmpfs copy of the same 256 MiB; fio 4 KiB
# random read QD16 and 1 MiB sequential read QD4 on each, time-based; prints the ratios.
# Both are RAM-backed, so this measures the frontend's overhead. Under TCG absolute numbers
# are low; only the ratio means anything. Usage: ublk/bench-guest.sh [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNTIME_S=${1:-15}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$(cargo test -q -p pnfs-ublk --test guest --no-run --message-format=json 2>/dev/null |
	sed -n 's/.*"executable":"\([^"]*\/guest-[^"]*\)".*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "bench-guest: could not build the ublk guest test binary" >&2; exit 1; }
cargo run -q -p pnfs-testbed --bin pnfs-guest -- --timeout 1200 --memory 1536 -c "
require_module ublk_drv loop
UBLK_GUEST_SERVE=1 '$BIN' serve_ramdisk_for_guest --ignored --exact --nocapture >/run/u.log 2>&1 &
PID=\$!
wait_for 120 grep -q '^UBLK_READY ' /run/u.log
DEV=\$(sed -n 's/^UBLK_READY //p' /run/u.log)
head -c 256M /dev/urandom > /run/img
dd if=/run/img of=\$DEV bs=1M oflag=direct status=none
LOOP=\$(losetup -f --show /run/img)
# terse v3: field 7 = read bandwidth KiB/s, field 8 = read IOPS
run() { fio --name=b --filename=\$1 --direct=1 --ioengine=libaio --readonly --time_based \
	--runtime=$RUNTIME_S --size=256M --output-format=terse --terse-version=3 \"\${@:2}\" | cut -d';' -f\$FIELD; }
FIELD=8; U4=\$(run \$DEV --rw=randread --bs=4k --iodepth=16); L4=\$(run \$LOOP --rw=randread --bs=4k --iodepth=16)
FIELD=7; U1=\$(run \$DEV --rw=read --bs=1M --iodepth=4); L1=\$(run \$LOOP --rw=read --bs=1M --iodepth=4)
echo \"4k randread QD16 IOPS: ublk \$U4 loop \$L4 ratio \$(awk -v a=\$U4 -v b=\$L4 'BEGIN{printf \"%.2f\", a/b}')\"
echo \"1M seqread QD4 KiB/s:  ublk \$U1 loop \$L1 ratio \$(awk -v a=\$U1 -v b=\$L1 'BEGIN{printf \"%.2f\", a/b}')\"
losetup -d \$LOOP
kill -TERM \$PID; wait \$PID
"
