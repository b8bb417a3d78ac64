#!/usr/bin/env python3
"""Seeded random write/truncate/read exerciser verified against an in-memory model.

usage: exerciser.py PATH SEED OPS [MAX_BYTES] [sync-extend]
About every 50 operations the file is fsync'ed and its cached pages dropped, so reads go
back to the server (through layouts or MDS READs). Prints the seed; exits 1 on a mismatch.

With "sync-extend", every write that moves the end of file is fsync'ed at once. That closes
the window of a Linux client race (seen with Linux nfsd as the server too): a LAYOUTCOMMIT
reply whose GETATTR size predates an extending write that has already reached the volume
sets the client's i_size back (nfs_size_wcc), and reads past it come back short. Everything
the server does is checked the same way in both modes.
"""
import os
import random
import sys
import time

path, seed, nops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
max_bytes = int(sys.argv[4]) if len(sys.argv) > 4 else 4 << 20
sync_extend = len(sys.argv) > 5 and sys.argv[5] == "sync-extend"
mode = "sync-extend" if sync_extend else "strict"
print(f"exerciser: seed {seed}, {nops} ops, file {path}, max {max_bytes} bytes, {mode}",
      flush=True)
rng = random.Random(seed)
model = bytearray()
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
counts = {"write": 0, "truncate": 0, "read": 0, "flush": 0, "extend-sync": 0}


def check(off, n, what):
    got = os.pread(fd, n, off)
    want = bytes(model[off:off + n])
    if got != want:
        bad = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
        print(f"MISMATCH after {what}: seed {seed} read {off}+{n}: first bad byte at {off + bad} "
              f"(got len {len(got)}, want len {len(want)})", flush=True)
        sys.exit(1)


t0 = time.monotonic()
for i in range(nops):
    if i and i % 1000 == 0:
        print(f"exerciser: {i} ops, {time.monotonic() - t0:.0f} s, size {len(model)}", flush=True)
    r = rng.random()
    if r < 0.45:
        off = rng.randrange(0, max_bytes)
        n = rng.choice([1, 100, 512, 4096, 4096 * 3, 65536, rng.randrange(1, 200000)])
        n = min(n, max_bytes - off) or 1
        if rng.random() < 0.5:
            off = off // 4096 * 4096
        data = rng.randbytes(n)
        os.pwrite(fd, data, off)
        if sync_extend and off + n > len(model):
            os.fsync(fd)
            counts["extend-sync"] += 1
        if off > len(model):
            model.extend(bytes(off - len(model)))
        model[off:off + n] = data
        counts["write"] += 1
    elif r < 0.55:
        size = rng.randrange(0, max_bytes)
        os.ftruncate(fd, size)
        if size < len(model):
            del model[size:]
        else:
            model.extend(bytes(size - len(model)))
        counts["truncate"] += 1
    elif r < 0.98:
        off = rng.randrange(0, max(1, len(model) + 4096))
        n = rng.randrange(1, 300000)
        check(off, n, f"op {i}")
        counts["read"] += 1
    else:
        os.fsync(fd)
        # Drop this file's cached pages so the next reads go to the server.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if rng.random() < 0.2:
            os.close(fd)
            fd = os.open(path, os.O_RDWR)
        counts["flush"] += 1
        if os.fstat(fd).st_size != len(model):
            print(f"MISMATCH: size {os.fstat(fd).st_size} != {len(model)} (seed {seed}, op {i})")
            sys.exit(1)
        check(0, len(model), f"flush at op {i}")

os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)
fd = os.open(path, os.O_RDONLY)
check(0, len(model) + 1, "final")
print(f"exerciser OK: seed {seed}, {counts}, final size {len(model)}", flush=True)
