"""Byte-range locks between two processes on one NFS mount (fcntl, through LOCK/LOCKU).

Usage: locks.py FILE. A holder process write-locks bytes 0-99; this process must be refused
an overlapping F_SETLK (the server answers DENIED), F_GETLK must report the holder's write
lock, a disjoint lock must be granted, and a blocking F_SETLKW on the held range must be
granted once the holder is killed (its locks are released). Exits non-zero on any failure.
"""
import errno
import fcntl
import os
import struct
import subprocess
import sys
import time

path = sys.argv[1]
open(path, "w").close()
holder = subprocess.Popen(
    [
        sys.executable,
        "-c",
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n",
        path,
    ],
    stdout=subprocess.PIPE,
    text=True,
)
if holder.stdout.readline().strip() != "locked":
    sys.exit("the holder did not get its lock")
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
holder.kill()
holder.wait()
t = time.monotonic()
fcntl.lockf(fd, fcntl.LOCK_EX, 10, 50)
print(f"locks: denied while held, F_GETLK ok, granted {time.monotonic() - t:.1f} s after the holder died")
