# Guest helpers for the embedded MDS (sourced after tests/guest/lib.sh).
#   start_mds PORT BLOCK_SIZE [extra flags]   volume file on tmpfs, MDS in background, loop dev
#   kill_mds                                   SIGKILL the MDS (and wait, with a deadline,
#                                              until it has exited)
#   mds_admin CMD...                           one admin-socket request (answer within 30 s)
# Needs PNFS_MDS_BIN (path of the pnfs-mds binary built on the host).

MDS_DIR=${MDS_DIR:-/run/mds}
# From starting the MDS to its admin socket (the state directory is read and the volume's
# label written first); about a second under TCG.
MDS_START_DEADLINE_S=60
# From SIGKILL to the MDS process gone with every thread.
MDS_EXIT_DEADLINE_S=60

start_mds() {
	local port=$1 bs=$2
	shift 2
	mkdir -p "$MDS_DIR"
	[ -f "$MDS_DIR/vol.img" ] || truncate -s "${MDS_VOL_MIB:-256}M" "$MDS_DIR/vol.img"
	RUST_LOG=${RUST_LOG:-info} "$PNFS_MDS_BIN" --listen "${MDS_LISTEN:-127.0.0.1}:$port" --state "$MDS_DIR/state" \
		--volume "$MDS_DIR/vol.img" --block-size "$bs" --lease-seconds 10 --grace-seconds 10 "$@" \
		>>"$MDS_DIR/mds.log" 2>&1 &
	MDS_PID=$!
	export MDS_PID
	wait_for "$MDS_START_DEADLINE_S" test -S "$MDS_DIR/state/admin.sock"
	# The label is written before the socket exists; now the loop device may show it.
	if [ -z "${MDS_LOOP:-}" ]; then
		require_module loop
		MDS_LOOP=$(losetup -f --show "$MDS_DIR/vol.img")
		export MDS_LOOP
	fi
	echo "mds: pid $MDS_PID port $port block size $bs volume $MDS_LOOP"
}

kill_mds() {
	kill -9 "$MDS_PID" 2>/dev/null || true
	wait_exit "$MDS_EXIT_DEADLINE_S" "$MDS_PID" "the MDS after SIGKILL"
	rm -f "$MDS_DIR/state/admin.sock"
}

mds_admin() {
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1]); s.sendall((sys.argv[2]+"\n").encode()); print(s.makefile().readline().strip())' "$MDS_DIR/state/admin.sock" "$*"
}
