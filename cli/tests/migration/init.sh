#!/bin/busybox sh
# /init of the migrating VM (cli/tests/migration.rs): no 9p root (a mounted virtio-9p device
# blocks live migration), only busybox, virtio_blk and this disk workload on /dev/vda.
#
# Round R (generation R) writes a fresh region (R-1)*BLOCKS .. R*BLOCKS of self-describing
# 4 KiB blocks: each 512-byte sector holds "PNFSMIG off=<block byte offset> gen=<R>
# seed=<SEED>" twice, so a reader names zeros, stale generations and misplaced blocks. Fresh
# space on every round: the gateway has new extents to LAYOUTCOMMIT until the next flush. The
# 64 KiB chunks are written with O_DIRECT (no guest page cache and no guest flush: the only
# flushes the gateway sees are qemu's own, e.g. before a migration switch) in a seeded order;
# then the region is read back with O_DIRECT and compared with what was written, and so is the
# previous round's region (written before a migration, it is read after it). A mismatch is
# diagnosed per block. Progress and the summary go to the console (ttyS0):
#   MIG round R ok md5=... | MIG round R MISMATCH blocks=N | MIG DONE rounds=R errors=E mismatches=M
# Parameters from the kernel command line: mig.seed= mig.rounds= mig.blocks= (blocks per
# round, a multiple of 16).
/bin/busybox mkdir -p /bin /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp

say() { echo "MIG $*" >/dev/ttyS0; }
halt() {
	sync
	echo o >/proc/sysrq-trigger
	sleep 60
}
arg() { sed -n "s/.*mig\.$1=\([0-9]*\).*/\1/p" /proc/cmdline; }

while read -r m; do
	insmod "/modules/$m" || { say "FAILED insmod $m"; halt; }
done </modules/order

SEED=$(arg seed)
ROUNDS=$(arg rounds)
BLOCKS=$(arg blocks)
BLOCK_BYTES=4096
CHUNK_BLOCKS=16
CHUNK_BYTES=$((BLOCK_BYTES * CHUNK_BLOCKS))
CHUNKS=$((BLOCKS / CHUNK_BLOCKS))
DEV=/dev/vda
if [ -z "$SEED" ] || [ -z "$ROUNDS" ] || [ -z "$BLOCKS" ] || [ "$CHUNKS" -lt 1 ]; then
	say "FAILED bad parameters: $(cat /proc/cmdline)"
	halt
fi
tries=0
while [ ! -b "$DEV" ]; do
	tries=$((tries + 1))
	[ "$tries" -gt 100 ] && { say "FAILED no $DEV"; halt; }
	sleep 0.1
done

# A 31-bit linear congruential generator, seeded: the chunk order of every round.
rng=$SEED
next() { rng=$(((rng * 1103515245 + 12345) % 2147483648)); }

errors=0
mismatches=0
say "START seed=$SEED rounds=$ROUNDS blocks=$BLOCKS"
# check WANT GOT ROUND: compares two region files, reports and counts mismatched blocks.
check() {
	if cmp -s "$1" "$2"; then
		return 0
	fi
	bad=0
	b=0
	while [ "$b" -lt "$BLOCKS" ]; do
		w=$(dd if="$1" bs=$BLOCK_BYTES skip=$b count=1 2>/dev/null | md5sum)
		g=$(dd if="$2" bs=$BLOCK_BYTES skip=$b count=1 2>/dev/null | md5sum)
		if [ "$w" != "$g" ]; then
			bad=$((bad + 1))
			[ "$bad" -le 3 ] && say "block $b of round $3: found '$(dd if="$2" bs=1 skip=$((b * BLOCK_BYTES)) count=60 2>/dev/null | tr -c 'A-Za-z0-9= ' '.')'"
		fi
		b=$((b + 1))
	done
	mismatches=$((mismatches + bad))
	say "round $3 MISMATCH blocks=$bad"
	return 1
}

round=1
while [ "$round" -le "$ROUNDS" ]; do
	gen=$round
	first=$(((round - 1) * CHUNKS))
	: >/tmp/want
	b=0
	while [ "$b" -lt "$BLOCKS" ]; do
		h="PNFSMIG off=$(((first * CHUNK_BLOCKS + b) * BLOCK_BYTES)) gen=$gen seed=$SEED"
		printf '%-255s%256s\n' "$h" "$h" "$h" "$h" "$h" "$h" "$h" "$h" \
			"$h" "$h" "$h" "$h" "$h" "$h" "$h" "$h" >>/tmp/want
		b=$((b + 1))
	done
	# Visit every chunk once: start + k*step (mod CHUNKS), step odd (CHUNKS is a power of 2).
	next
	start=$((rng % CHUNKS))
	next
	step=$(((rng % CHUNKS) | 1))
	k=0
	while [ "$k" -lt "$CHUNKS" ]; do
		c=$(((start + k * step) % CHUNKS))
		dd if=/tmp/want of=$DEV bs=$CHUNK_BYTES skip=$c seek=$((first + c)) count=1 \
			oflag=direct conv=notrunc 2>/tmp/dd.err ||
			{ errors=$((errors + 1)); say "ERROR write chunk $c: $(cat /tmp/dd.err)"; }
		k=$((k + 1))
	done
	dd if=$DEV of=/tmp/got bs=$CHUNK_BYTES skip=$first count=$CHUNKS iflag=direct 2>/tmp/dd.err ||
		{ errors=$((errors + 1)); say "ERROR read: $(cat /tmp/dd.err)"; }
	ok=1
	check /tmp/want /tmp/got $round || ok=0
	if [ "$round" -gt 1 ]; then
		dd if=$DEV of=/tmp/got bs=$CHUNK_BYTES skip=$((first - CHUNKS)) count=$CHUNKS iflag=direct 2>/tmp/dd.err ||
			{ errors=$((errors + 1)); say "ERROR read: $(cat /tmp/dd.err)"; }
		check /tmp/prev /tmp/got $((round - 1)) || ok=0
	fi
	[ "$ok" = 1 ] && say "round $round ok md5=$(md5sum </tmp/want | cut -c1-32)"
	mv /tmp/want /tmp/prev
	round=$((round + 1))
done
say "DONE rounds=$ROUNDS errors=$errors mismatches=$mismatches"
halt
