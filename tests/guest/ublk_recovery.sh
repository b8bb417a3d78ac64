# ublk devices that survive a gateway restart (issue 15 item 2), sourced after lib.sh in one
# guest boot, on the embedded MDS (MDS_KIND=embedded) or Linux nfsd (MDS_KIND=nfsd):
#   1. `pnfsgw export --ublk --ublk-recovery`: ext4 on /dev/ublkbN, the crash verifier's
#      workload running (tests/guest/fsync_writer.py: records written with fsync, a journal
#      of those whose fsync returned, kept on /run, off the device).
#   2. ROUNDS times: SIGKILL of the gateway; the device stays; a new gateway recovers the
#      same /dev/ublkbN; the workload goes on (its journal grows again). Then one round with
#      SIGTERM instead (systemctl restart): the gateway exits 0 and hands the device over.
#   3. The workload ends without an I/O error; umount; fsck.ext4 -fn clean; a gateway started
#      after one more SIGKILL reads every journalled record back (caches dropped, so through
#      the new process and the volume); no I/O error in the kernel log.
#   4. The rule for devices left behind: a start without --ublk-recovery deletes the kept
#      device and adds a new one; a SIGKILLed gateway without recovery leaks no ublk id (the
#      next start deletes its dead device); SIGTERM without recovery deletes the device.
#
# Env: PNFSGW (binary), WRITER (fsync_writer.py), MDS_KIND, SEED, ROUNDS (SIGKILL rounds).
# Results in $OUT: steps.txt ("ok NAME" per passed check), rounds.txt (one line per restart:
# how long the device was without a gateway), verify.txt, gw*.log, hang-N.txt on a hang.

MIB=$((1024 * 1024))
ROUNDS=${ROUNDS:-3}
T=/run/ublk-rec
RECORDS=/run/pnfsgw/ublk
mkdir -p "$T"
HANG_DUMP_EXTRA="timeout 10 $PNFSGW stats --control $T/c.sock; tail -n 5 $T/journal; ls -l /sys/class/ublk-char/ $RECORDS"
export T
: >"$OUT/steps.txt"
: >"$OUT/rounds.txt"
passed() { echo "ok $1" | tee -a "$OUT/steps.txt"; }
trap 'cp "$T"/*.log "$T"/*.out "$OUT"/ 2>/dev/null || true' EXIT

step "modules and MDS ($MDS_KIND)"
require_module ublk_drv
case "$MDS_KIND" in
nfsd)
	start_nfsd_pnfs 1200
	truncate -s $((512 * MIB)) "$PNFS_EXPORT/disk.img"
	MDS_ADDR=127.0.0.1:2049
	VOLUME=$PNFS_VOL_DEV
	CREATE=()
	;;
embedded)
	truncate -s 700M "$T/vol.img"
	RUST_LOG=info "$PNFSGW" mds --listen 127.0.0.1:20490 --state "$T/mds" --volume "$T/vol.img" \
		--lease-seconds 10 --grace-seconds 10 --recall-timeout-seconds 10 >"$T/mds.log" 2>&1 &
	MDS=$!
	wait_for 60 test -S "$T/mds/admin.sock"
	MDS_ADDR=127.0.0.1:20490
	VOLUME=$T/vol.img
	CREATE=(--create 512M)
	;;
*) fail "MDS_KIND must be nfsd or embedded, got '$MDS_KIND'" ;;
esac

ublk_ids() { ls /sys/class/ublk-char/ 2>/dev/null | sed -n 's/^ublkc//p' | sort -n | tr '\n' ' '; }

# start_gw N [--ublk-recovery]: gateway number N (log gwN.log), sets GW (pid) and DEV.
start_gw() {
	local n=$1
	shift
	RUST_LOG=info "$PNFSGW" export --mds "$MDS_ADDR" --path /disk.img --nbd 127.0.0.1:10809 \
		"${CREATE[@]}" --ublk "$@" --volume "$VOLUME" --control "$T/c.sock" \
		>"$T/gw$n.out" 2>"$T/gw$n.log" &
	GW=$!
	local i
	for ((i = 0; i < 1800; i++)); do
		grep -q '^/dev/ublkb' "$T/gw$n.out" && break
		kill -0 "$GW" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q '^/dev/ublkb' "$T/gw$n.out"; then
		cat "$T/gw$n.log"
		kill -0 "$GW" 2>/dev/null || fail "gateway $n exited before it printed its device"
		hang_dump "gateway $n did not print its device within 180 s"
		fail "gateway $n did not print its device within 180 s"
	fi
	DEV=$(grep '^/dev/ublkb' "$T/gw$n.out")
	test -b "$DEV"
	echo "gateway $n: pid $GW device $DEV; ublk ids: $(ublk_ids)"
}

journal_lines() { wc -l <"$T/journal"; }
# True once N records are journalled, or once the workload has ended (an I/O error ends it).
journal_at_least() { [ "$(journal_lines)" -ge "$1" ] || ! kill -0 "$WPID" 2>/dev/null; }
# wait_progress N: the workload has journalled N more records than now (its I/O flows).
wait_progress() {
	local want=$(($(journal_lines) + $1))
	wait_for 180 journal_at_least "$want"
	kill -0 "$WPID" 2>/dev/null || { cat "$T/writer.out"; fail "the workload ended early"; }
}

step "1. gateway with recovery: ext4 on the device, the workload running"
start_gw 1 --ublk-recovery
DEV0=$DEV
grep -q 'survives a restart' "$T/gw1.log" || fail "the device was not made with recovery"
ls "$RECORDS" | grep -qx "${DEV0#/dev/ublkb}" || fail "no record of ${DEV0#/dev/ublkb} in $RECORDS"
guarded 120 mkfs.ext4 mkfs.ext4 -q -F "$DEV0"
mkdir -p /mnt/u
guarded 60 "mount ext4" mount "$DEV0" /mnt/u
: >"$T/journal"
python3 "$WRITER" write /mnt/u/w "$T/journal" "$T/stop" "$SEED" >"$T/writer.out" 2>&1 &
WPID=$!
wait_progress 20
passed workload

# restart_round N SIGNAL: kill the gateway with SIGNAL, start gateway N, the same device.
restart_round() {
	local n=$1 sig=$2
	local before
	before=$(journal_lines)
	kill "-$sig" "$GW"
	local t0
	t0=$(date +%s.%N)
	wait_exit 120 "$GW" "gateway after SIG$sig"
	if [ "$sig" = TERM ]; then
		assert_eq 0 "$EXIT_STATUS" "pnfsgw exit status after SIGTERM"
		grep -q 'handed over' "$T/gw$((n - 1)).log" || fail "no hand-over in gw$((n - 1)).log"
	fi
	test -b "$DEV0" || fail "$DEV0 vanished with its gateway (SIG$sig)"
	start_gw "$n" --ublk-recovery
	assert_eq "$DEV0" "$DEV" "the device path after the restart"
	grep -q 'recovered' "$T/gw$n.log" || fail "gateway $n did not recover $DEV0"
	wait_progress 20
	local t1
	t1=$(date +%s.%N)
	echo "round $n SIG$sig: journal $before -> $(journal_lines), kill to 20 more records $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s" |
		tee -a "$OUT/rounds.txt"
}

for ((round = 1; round <= ROUNDS; round++)); do
	step "2. SIGKILL, restart, the same device recovered (round $round of $ROUNDS)"
	restart_round $((round + 1)) KILL
done
passed sigkill
step "2. SIGTERM (systemctl restart): hand over, restart, the same device recovered"
restart_round $((ROUNDS + 2)) TERM
passed sigterm

step "3. the workload ends without an I/O error; fsck clean"
touch "$T/stop"
wait_exit 120 "$WPID" "the workload"
cat "$T/writer.out"
assert_eq 0 "$EXIT_STATUS" "the workload's exit status (an I/O error ends it with 1)"
guarded 60 "umount ext4" umount /mnt/u
guarded 180 fsck.ext4 fsck.ext4 -fn "$DEV0"
step "3. every flushed record is there, read through a new gateway process"
kill -KILL "$GW"
wait_exit 60 "$GW" "gateway after SIGKILL"
guarded 60 drop_caches drop_caches
start_gw verify --ublk-recovery
assert_eq "$DEV0" "$DEV" "the device path for the verification"
guarded 60 "mount ext4 ro" mount -o ro "$DEV0" /mnt/u
guarded 300 "verify the records" python3 "$WRITER" verify /mnt/u/w "$T/journal" "$SEED" |
	tee "$OUT/verify.txt"
guarded 60 "umount ext4" umount /mnt/u
# The kernel's own words ("I/O error, dev ublkb0, sector ...", "Buffer I/O error on dev
# ublkb0", "EXT4-fs error (device ublkb0)"); the test bed's step lines are not its words.
if dmesg | grep -v 'pnfs-testbed' | grep -E 'I/O error.*ublkb|EXT4-fs (error|warning)'; then
	fail "I/O errors in the kernel log"
fi
passed verified

step "4. a start without recovery deletes the kept device"
kill -TERM "$GW"
wait_exit 120 "$GW" "gateway after SIGTERM"
assert_eq 0 "$EXIT_STATUS" "pnfsgw exit status after SIGTERM (hand-over)"
test -b "$DEV0" || fail "$DEV0 was deleted by a hand-over"
start_gw plain-1
grep -q 'left by an earlier run' "$T/gwplain-1.log" || fail "the kept device was not deleted"
assert_eq "${DEV#/dev/ublkb} " "$(ublk_ids)" "ublk ids after a start without recovery"
step "4. SIGKILL without recovery leaks no ublk id"
kill -KILL "$GW"
wait_exit 60 "$GW" "gateway after SIGKILL"
start_gw plain-2
assert_eq "${DEV#/dev/ublkb} " "$(ublk_ids)" "ublk ids after a SIGKILL and a new start"
kill -TERM "$GW"
wait_exit 120 "$GW" "gateway after SIGTERM"
assert_eq 0 "$EXIT_STATUS" "pnfsgw exit status after SIGTERM"
assert_eq "" "$(ublk_ids)" "ublk ids after SIGTERM without recovery"
assert_eq "" "$(ls "$RECORDS")" "records left after SIGTERM without recovery"
passed rule
if [ "$MDS_KIND" = embedded ]; then
	kill -TERM "$MDS"
	wait_exit 60 "$MDS" "pnfsgw mds after SIGTERM"
	assert_eq 0 "$EXIT_STATUS" "pnfsgw mds exit status after SIGTERM"
fi
echo ALL-OK
