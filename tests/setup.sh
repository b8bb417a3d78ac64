#!/usr/bin/env bash
# The one install step for this project (used by `./dev demo`, `./dev test` and CI).
#
# Brings a Debian bookworm machine to the state the test suite needs and does nothing (fast,
# no network) when everything is already there. It prints every package it installs.
#
# Why bookworm-backports: bookworm's own 6.1 kernel has no ublk driver and no nfsd SCSI
# layout; the backports 6.12 kernel has both (see docs/testbed.md). The machine may also come with
# qemu-utils from backports preinstalled, which makes bookworm's qemu-system-x86 uninstallable
# (Breaks), so the qemu packages come from backports too.
#
# The backports sources entry copies its URIs from the machine's own debian.sources at run
# time: no mirror host name is written into this repository.
set -eEuo pipefail

# No silent exit: whatever fails names the step it was in and the command, with its status.
STEP="start"
step() { STEP="$*"; }
trap 'rc=$?; echo "setup: ERROR: step \"$STEP\" failed: \`$BASH_COMMAND\` exited with status $rc" >&2; exit $rc' ERR

# Packages from plain bookworm.
BOOKWORM_PKGS=(
  libclang-dev libnbd-bin nbdkit fio nfs-ganesha nfs-ganesha-vfs xfsprogs e2fsprogs
  nfs-kernel-server nfs-common nbd-client busybox-static kmod cpio xz-utils iproute2 tshark
  python3-libnbd prometheus curl openssl
)
# Packages that must come from bookworm-backports (installed together in one transaction).
BACKPORTS_PKGS=(qemu-system-x86 qemu-utils linux-image-amd64)

# The oldest guest kernel that has ublk_drv and the nfsd SCSI layout.
MIN_KERNEL_MAJOR=6
MIN_KERNEL_MINOR=12

# Overridable only to test this script's fresh-machine path: a scratch apt directory, and an
# empty dpkg database (dpkg-query --admindir) that stands for a machine with nothing installed.
APT_DIR=${PNFS_APT_DIR:-/etc/apt}
DPKG_ADMINDIR_ARGS=()
if [ -n "${PNFS_DPKG_ADMINDIR:-}" ]; then
  DPKG_ADMINDIR_ARGS=(--admindir="$PNFS_DPKG_ADMINDIR")
fi
DEBIAN_SOURCES=$APT_DIR/sources.list.d/debian.sources
BACKPORTS_SOURCES=$APT_DIR/sources.list.d/bookworm-backports.sources
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { echo "setup: $*" >&2; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

# INSTALLED: the fully installed ones among our packages (one dpkg-query call: fast).
# dpkg-query exits 1 when any named package is unknown to dpkg (on a new machine most are): that
# is an answer, not a failure, so its status is ignored here and only its output is read.
step "asking dpkg which packages are installed"
INSTALLED=" $( (dpkg-query "${DPKG_ADMINDIR_ARGS[@]}" -W -f='${db:Status-Abbrev}${Package}\n' "${BOOKWORM_PKGS[@]}" "${BACKPORTS_PKGS[@]}" \
  2>/dev/null || true) | awk '$1 == "ii" { printf "%s ", $2 }')"

# is_installed PKG: true when dpkg has PKG fully installed.
is_installed() {
  [[ $INSTALLED == *" $1 "* ]]
}

# have_guest_kernel: true when /boot has a >= 6.12 kernel whose modules are present.
have_guest_kernel() {
  local k ver major minor rest
  for k in /boot/vmlinuz-*; do
    [ -e "$k" ] || continue
    ver=${k#/boot/vmlinuz-}
    major=${ver%%.*}
    rest=${ver#*.}
    minor=${rest%%[!0-9]*}
    [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || continue
    if ((major > MIN_KERNEL_MAJOR || (major == MIN_KERNEL_MAJOR && minor >= MIN_KERNEL_MINOR))); then
      [ -d "/lib/modules/$ver" ] && return 0
    fi
  done
  return 1
}

# backports_configured: true when some apt source already names bookworm-backports.
backports_configured() {
  local f
  for f in "$APT_DIR/sources.list" "$APT_DIR"/sources.list.d/*.list "$APT_DIR"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # A one-line-style entry or a deb822 Suites field (ignoring comments).
    if grep -Eq '^[^#]*[[:space:]]bookworm-backports([[:space:]]|$)' "$f"; then
      return 0
    fi
  done
  return 1
}

# debian_uris FILE: the URIs of the deb822 stanza whose Suites list contains plain `bookworm`.
debian_uris() {
  awk '
    function flush() {
      if (is_bookworm && uris != "") print uris
      is_bookworm = 0; uris = ""
    }
    /^[[:space:]]*$/ { flush(); next }
    /^[[:space:]]*#/ { next }
    tolower($1) == "uris:" { uris = ""; for (i = 2; i <= NF; i++) uris = uris (uris == "" ? "" : " ") $i }
    tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") is_bookworm = 1 }
    END { flush() }
  ' "$1" | head -n 1
}

# write_backports_sources: create the bookworm-backports deb822 entry from debian.sources.
write_backports_sources() {
  [ -f "$DEBIAN_SOURCES" ] || die "$DEBIAN_SOURCES not found: cannot derive the bookworm-backports URIs"
  local uris
  uris=$(debian_uris "$DEBIAN_SOURCES")
  [ -n "$uris" ] || die "no stanza with Suites: bookworm and URIs in $DEBIAN_SOURCES"
  say "writing $BACKPORTS_SOURCES (URIs: $uris)"
  cat >"$BACKPORTS_SOURCES.tmp" <<EOF
# Written by pnfs-gateway tests/setup.sh: the 6.12 guest kernel and qemu come from here.
Types: deb
URIs: $uris
Suites: bookworm-backports
Components: main
Signed-By: $KEYRING
EOF
  mv "$BACKPORTS_SOURCES.tmp" "$BACKPORTS_SOURCES"
}

# Test hooks: `--print-backports-sources` prints the entry this machine would get; `--dry-run`
# (below) prints what is missing without changing anything.
# Print the sources entry this machine would get, and exit.
if [ "${1:-}" = "--print-backports-sources" ]; then
  BACKPORTS_SOURCES=$(mktemp)
  write_backports_sources 2>/dev/null
  cat "$BACKPORTS_SOURCES"
  rm -f "$BACKPORTS_SOURCES"
  exit 0
fi

step "listing the missing packages"
missing_bookworm=()
for p in "${BOOKWORM_PKGS[@]}"; do
  is_installed "$p" || missing_bookworm+=("$p")
done
missing_backports=()
for p in qemu-system-x86 qemu-utils; do
  is_installed "$p" || missing_backports+=("$p")
done
if ! is_installed linux-image-amd64 || ! have_guest_kernel; then
  missing_backports+=(linux-image-amd64)
fi

if [ "${1:-}" = "--dry-run" ]; then
  echo "missing from bookworm: ${missing_bookworm[*]:-none}"
  echo "missing from bookworm-backports: ${missing_backports[*]:-none}"
  if backports_configured; then echo "bookworm-backports: configured"; else echo "bookworm-backports: would write $BACKPORTS_SOURCES"; fi
  exit 0
fi

if ((${#missing_bookworm[@]} + ${#missing_backports[@]} > 0)); then
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then
      say "not root: re-running with sudo"
      exec sudo -E "$0" "$@"
    fi
    die "missing packages (${missing_bookworm[*]} ${missing_backports[*]}) and not root"
  fi
  export DEBIAN_FRONTEND=noninteractive
  say "missing from bookworm: ${missing_bookworm[*]:-none}"
  say "missing from bookworm-backports: ${missing_backports[*]:-none}"
  step "writing the bookworm-backports apt source"
  backports_configured || write_backports_sources
  step "apt-get update"
  say "apt-get update"
  apt-get update -q
  if ((${#missing_backports[@]} > 0)); then
    # Always all three together: qemu-system-x86 and qemu-utils must match, and a backports
    # qemu-utils blocks bookworm's qemu-system-x86.
    step "installing ${BACKPORTS_PKGS[*]} from bookworm-backports"
    say "installing from bookworm-backports: ${BACKPORTS_PKGS[*]} (missing: ${missing_backports[*]})"
    apt-get install -y -q -t bookworm-backports "${BACKPORTS_PKGS[@]}"
  fi
  if ((${#missing_bookworm[@]} > 0)); then
    step "installing ${missing_bookworm[*]} from bookworm"
    say "installing from bookworm: ${missing_bookworm[*]}"
    apt-get install -y -q "${missing_bookworm[@]}"
  fi
  have_guest_kernel || die "linux-image-amd64 from bookworm-backports installed, but no >= $MIN_KERNEL_MAJOR.$MIN_KERNEL_MINOR kernel in /boot"
fi

# The Rust toolchain is a precondition (the machine comes with it); say so clearly if not.
command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (rustup) first"

# cargo-fuzz runs the bounded fuzzing step of `./dev test` (fuzz/run-ci.sh).
step "installing cargo-fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (cargo install --locked cargo-fuzz)"
  cargo install --locked cargo-fuzz
fi

say "all packages present"
