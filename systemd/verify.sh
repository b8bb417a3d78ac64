#!/usr/bin/env bash
# Checks the unit files with `systemd-analyze verify`, pointing ExecStart at a built pnfsgw
# (default target/release/pnfsgw or target/debug/pnfsgw) instead of /usr/local/bin/pnfsgw,
# in a temporary copy. Usage: systemd/verify.sh [PATH-TO-pnfsgw]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
if [[ -z $bin ]]; then
  for c in "${CARGO_TARGET_DIR:-$here/../target}"/{release,debug}/pnfsgw; do
    [[ -x $c ]] && { bin=$c; break; }
  done
fi
[[ -n $bin && -x $bin ]] || { echo "verify.sh: no pnfsgw binary; build it or pass its path" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
command -v systemd-analyze >/dev/null || { echo "verify.sh: systemd-analyze not installed" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for u in pnfsgw.service pnfsgw-mds.service; do
  sed "s|/usr/local/bin/pnfsgw|$bin|g; s|/etc/pnfsgw/pnfsgw.toml|$here/pnfsgw.example.toml|g; s|/etc/pnfsgw/mds.env|$here/mds.env.example|g" \
    "$here/$u" > "$tmp/$u"
done
# verify prints problems and exits non-zero on errors; warnings go to stderr too: fail on any.
out=$(systemd-analyze verify "$tmp/pnfsgw.service" "$tmp/pnfsgw-mds.service" 2>&1) || { echo "$out"; exit 1; }
if [[ -n $out ]]; then echo "$out"; exit 1; fi
echo "systemd units OK"
