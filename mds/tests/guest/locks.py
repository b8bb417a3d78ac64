"""Byte-range locks between processes on NFS mounts (fcntl, through LOCK/LOCKT/LOCKU).

Usage: locks.py FILE [HOLDER_FILE [HOLDER_PREFIX...]]. A holder process (on HOLDER_FILE, run
under HOLDER_PREFIX, e.g. `nsenter --net=/run/netns/c2` for a second mount with its own client
ID; default: FILE, no prefix) write-locks bytes 0-99. Then, on FILE:
- an overlapping F_SETLK is refused (the server answers DENIED), F_GETLK reports the holder's
  write lock, a disjoint lock is granted;
- a waiter process blocked in F_SETLKW on the held range stays blocked while the holder holds
  it and is granted once the holder unlocks (F_UNLCK);
- a second waiter blocked the same way is granted once the holder is killed (its locks are
  released when the process dies).
The server sends no CB_NOTIFY_LOCK: the Linux client polls with LOCK after DENIED.
Exits non-zero on any failure.
"""
import errno
import fcntl
import os
import select
import struct
import subprocess
import sys
import time

# How long a blocked waiter must stay blocked while the range is held (the client polls every
# second or more; a wrongly granted lock shows within this).
BLOCKED_CHECK_S = 4
# How long a waiter may take to get the lock once it is free: the Linux client's poll interval
# doubles up to 30 s after each DENIED.
GRANT_DEADLINE_S = 90

path = sys.argv[1]
holder_path = sys.argv[2] if len(sys.argv) > 2 else path
holder_prefix = sys.argv[3:]
open(path, "w").close()

# The holder: `lock` write-locks 0-99, `unlock` releases it; it answers each command with a line.
HOLDER = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"
    "for line in sys.stdin:\n"
    "    if line.strip() == 'lock':\n"
    "        fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)\n"
    "        print('locked', flush=True)\n"
    "    elif line.strip() == 'unlock':\n"
    "        fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0)\n"
    "        print('unlocked', flush=True)\n"
)
# A waiter: F_SETLKW on 50-59, says `waiting` before and `got` once granted, then holds it
# until its stdin closes.
WAITER = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"
    "print('waiting', flush=True)\n"
    "fcntl.lockf(fd, fcntl.LOCK_EX, 10, 50)\n"
    "print('got', flush=True)\n"
    "sys.stdin.read()\n"
)


def spawn(prefix, script, file):
    return subprocess.Popen(
        prefix + [sys.executable, "-c", script, file],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def line_within(proc, seconds):
    """The next line of `proc` within `seconds`, or None."""
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    return proc.stdout.readline().strip() if ready else None


def tell(proc, command, answer):
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    got = line_within(proc, GRANT_DEADLINE_S)
    if got != answer:
        sys.exit(f"holder: `{command}` answered {got!r}, not {answer!r}")


def blocked_waiter():
    """A waiter that is blocked on the held range (checked for BLOCKED_CHECK_S)."""
    w = spawn([], WAITER, path)
    if line_within(w, GRANT_DEADLINE_S) != "waiting":
        sys.exit("the waiter did not start")
    got = line_within(w, BLOCKED_CHECK_S)
    if got is not None:
        sys.exit(f"F_SETLKW on a held range returned ({got!r}) while the holder holds it")
    return w


def granted(w, why):
    t = time.monotonic()
    if line_within(w, GRANT_DEADLINE_S) != "got":
        sys.exit(f"the blocked F_SETLKW was not granted within {GRANT_DEADLINE_S} s after {why}")
    took = time.monotonic() - t
    w.stdin.close()
    w.wait()
    return took


holder = spawn(holder_prefix, HOLDER, holder_path)
tell(holder, "lock", "locked")
fd = os.open(path, os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
    sys.exit("F_SETLK on a range another process holds succeeded")
except OSError as e:
    if e.errno not in (errno.EAGAIN, errno.EACCES):
        sys.exit(f"F_SETLK on a held range: {e}")
# struct flock on x86_64: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
FLOCK = "hhxxxxqqi4x"
got = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 50, 10, 0))
ltype, _, start, length, _ = struct.unpack(FLOCK, got)
if (ltype, start, length) != (fcntl.F_WRLCK, 0, 100):
    sys.exit(f"F_GETLK: type {ltype} start {start} length {length}, not the holder's write lock")
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 200)

w = blocked_waiter()
tell(holder, "unlock", "unlocked")
after_unlock = granted(w, "the holder unlocked")

tell(holder, "lock", "locked")
w = blocked_waiter()
holder.kill()
holder.wait()
after_death = granted(w, "the holder died")
print(
    f"locks: denied while held, F_GETLK ok; blocked F_SETLKW granted {after_unlock:.1f} s "
    f"after the unlock, {after_death:.1f} s after the holder died"
)
