#!/usr/bin/env bash
# The frontend-only part of bench/ublk-guest.sh (no gateway build): loop vs the cheapest
# libublk server vs this crate's frontend over a RAM disk, one guest boot. See that script's
# header for what each row measures. Usage: ublk/bench-guest.sh [SECONDS_PER_JOB]
set -euo pipefail
exec "$(dirname "$0")/../bench/ublk-guest.sh" --runtime "${1:-6}" \
	--rows "loop null-q1 direct-q1 ours-q1 direct-q2 ours-q2 ours-q2p loop"
