#!/usr/bin/python3
"""The crash verifier's workload: self-describing records written with fsync, and a journal
of the records whose fsync returned (kept off the device under test).

  fsync_writer.py write DIR JOURNAL STOPFILE SEED
      Until STOPFILE exists: record i (i = 1, 2, ...) goes into file DIR/rec-<i % FILES> at
      offset (i // FILES) * RECORD_BYTES of that file (files grow, and earlier records of a
      file are never rewritten), then fsync(file); then every RENAME_EVERY records a new file
      DIR/mark-<i> is created, fsynced, and its directory fsynced too. Only after the fsyncs
      returned is "i start end" appended to JOURNAL (times in seconds, monotonic): the record
      is a flushed write the device acknowledged. Any OSError ends the run with exit 1 and the
      error on stderr (an I/O error the workload saw).
  fsync_writer.py verify DIR JOURNAL SEED
      Every journalled record must be in place with its exact bytes; prints how many were
      checked, the lost ones (exit 1 if any), and the longest single write+fsync (the pause
      a restart of the gateway caused).

A record is RECORD_BYTES of bytes derived from (SEED, i), starting with a readable header,
so that a reader names zeros, another record, or torn data.
"""
import hashlib
import os
import sys
import time

RECORD_BYTES = 16384
FILES = 8
RENAME_EVERY = 16


def record(seed, i):
    head = ("PNFSREC seed=%d i=%d\n" % (seed, i)).encode()
    block = hashlib.sha256(head).digest()
    body = (block * (RECORD_BYTES // len(block) + 1))[: RECORD_BYTES - len(head)]
    return head + body


def place(dirname, i):
    return os.path.join(dirname, "rec-%d" % (i % FILES)), (i // FILES) * RECORD_BYTES


def write(dirname, journal, stopfile, seed):
    os.makedirs(dirname, exist_ok=True)
    fds = {}
    dfd = os.open(dirname, os.O_RDONLY | os.O_DIRECTORY)
    with open(journal, "a", buffering=1) as log:
        i = 0
        while not os.path.exists(stopfile):
            i += 1
            path, off = place(dirname, i)
            t0 = time.monotonic()
            fd = fds.get(path)
            if fd is None:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                fds[path] = fd
            os.pwrite(fd, record(seed, i), off)
            os.fsync(fd)
            if i % RENAME_EVERY == 0:
                m = os.open(os.path.join(dirname, "mark-%d" % i), os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(m, b"%d\n" % i)
                os.fsync(m)
                os.close(m)
                os.fsync(dfd)
            t1 = time.monotonic()
            log.write("%d %.6f %.6f\n" % (i, t0, t1))
    for fd in fds.values():
        os.close(fd)
    os.close(dfd)
    print("wrote %d records" % i)
    return 0


def verify(dirname, journal, seed):
    checked = 0
    lost = []
    longest = (0.0, 0)
    with open(journal) as log:
        for line in log:
            parts = line.split()
            if len(parts) != 3:
                continue  # a line torn by the writer's own end
            i, t0, t1 = int(parts[0]), float(parts[1]), float(parts[2])
            longest = max(longest, (t1 - t0, i))
            path, off = place(dirname, i)
            want = record(seed, i)
            try:
                with open(path, "rb") as f:
                    f.seek(off)
                    got = f.read(RECORD_BYTES)
            except OSError as e:
                lost.append((i, "unreadable: %s" % e))
                continue
            if i % RENAME_EVERY == 0 and not os.path.exists(os.path.join(dirname, "mark-%d" % i)):
                lost.append((i, "mark file missing"))
            checked += 1
            if got != want:
                if got == bytes(len(got)):
                    what = "zeros"
                elif len(got) < RECORD_BYTES:
                    what = "short (%d bytes)" % len(got)
                else:
                    what = "other data: %r" % got[:40]
                lost.append((i, what))
    print("verified %d flushed records; lost %d; longest write+fsync %.3f s (record %d)"
          % (checked, len(lost), longest[0], longest[1]))
    for i, what in lost[:10]:
        print("  record %d: %s" % (i, what))
    return 1 if lost or checked == 0 else 0


def main(argv):
    try:
        if len(argv) == 6 and argv[1] == "write":
            return write(argv[2], argv[3], argv[4], int(argv[5]))
        if len(argv) == 5 and argv[1] == "verify":
            return verify(argv[2], argv[3], int(argv[4]))
    except OSError as e:
        print("I/O error: %s" % e, file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
