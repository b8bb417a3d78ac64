# pnfs-testbed guest prelude: sourced (bash) before the test's script.
#
# The script runs with `set -eEo pipefail`: the first failing command ends it, and the ERR trap
# records which command failed (file, line, status) in /out/.runner/failed_command.
#
# step NAME      start a named step; the runner reports the step that was running when the
#                script failed or hung, and how long each step took.
# note TEXT      write TEXT to the guest kernel log (to line it up with kernel messages).
# fail MESSAGE   fail the script with MESSAGE; the runner's error quotes it.
# OUT            the writable per-run share (/out): files left here are given back to the test.
PNFS_RUNNER_DIR=/out/.runner
OUT=/out
export OUT
PNFS_STEP=""

note() {
	echo "pnfs-testbed: $*" >/dev/kmsg 2>/dev/null || true
}

step() {
	PNFS_STEP=$1
	printf '%s\n' "$1" >"$PNFS_RUNNER_DIR/step"
	echo "@@pnfs-step $1"
	note "step: $1"
}

# _pnfs_where SKIP: the call stack as "file:line in func <- file:line", innermost first,
# skipping SKIP helper frames and ending at the script's top level.
_pnfs_where() {
	local i out="" fn
	for ((i = $1 + 1; i < ${#BASH_SOURCE[@]}; i++)); do
		[ "${BASH_SOURCE[i]##*/}" = main.sh ] && break
		fn=${FUNCNAME[i]:-main}
		out+="${out:+ <- }${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
		case $fn in source | main) ;; *) out+=" in $fn" ;; esac
	done
	echo "${out:-?}"
}

# _pnfs_record_failure TEXT: remember the first failure (the runner quotes it).
_pnfs_record_failure() {
	if [ ! -e "$PNFS_RUNNER_DIR/failed_command" ]; then
		printf '%s\n' "$1" >"$PNFS_RUNNER_DIR/failed_command"
		echo "@@pnfs-failed $1"
		note "step ${PNFS_STEP:-<none>} failed: $1"
	fi
}

# fail MESSAGE: fail the script with MESSAGE (and where it was called from).
fail() {
	echo "FAIL: $*" >&2
	_pnfs_record_failure "$* (at $(_pnfs_where 1))"
	return 1
}

_pnfs_on_err() {
	local status=$1 cmd=$2
	_pnfs_record_failure "\`$cmd\` exited with status $status (at $(_pnfs_where 1))"
}

set -eEo pipefail
trap '_pnfs_on_err "$?" "$BASH_COMMAND"' ERR
