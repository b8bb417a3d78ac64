#!/usr/bin/python3
"""Hand-over cost between two gateways on one pNFS file (run by bench/handover.sh).

Usage: handover.py URI_A URI_B ITERATIONS

1. First direct I/O after a switch: gateway X writes 64 KiB and flushes (it holds the RW
   layout, committed); then gateway Y reads 4 KiB of it. Y's first read waits for the recall
   round trip (LAYOUTGET -> CB_LAYOUTRECALL to X -> X's LAYOUTCOMMIT/LAYOUTRETURN -> layout
   to Y); its second read is the warm direct read. Alternates X/Y each iteration. Every read
   is checked against what was written.
2. Ping-pong: gateways A and B take turns writing one 1 MiB range (64 KiB writes, a flush at
   the end of each turn), for turns of 1 MiB and of 64 KiB, against A alone with the same
   writes and flushes. Prints MiB/s.
"""
import statistics
import sys
import time

import nbd

KIB = 1024
MIB = 1024 * KIB
WRITE_BYTES = 64 * KIB
READ_BYTES = 4 * KIB
RANGE_BYTES = MIB
PINGPONG_TOTAL_BYTES = 32 * MIB
EARLY_ITERATIONS = 6


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def pattern(tag, length):
    line = ("%-63s\n" % tag).encode()
    return (line * (length // len(line) + 1))[:length]


def ms(seconds):
    return seconds * 1000.0


def summary(name, values_ms):
    values_ms = sorted(values_ms)
    p90 = values_ms[min(len(values_ms) - 1, int(len(values_ms) * 0.9))]
    print("%-34s median %8.2f ms  p90 %8.2f ms  max %8.2f ms  (n=%d)" % (
        name, statistics.median(values_ms), p90, values_ms[-1], len(values_ms)))


def handover(a, b, iterations):
    first, warm, write = [], [], []
    gws = [a, b]
    for i in range(iterations):
        x, y = gws[i % 2], gws[(i + 1) % 2]
        off = (i % 16) * WRITE_BYTES
        data = pattern("handover iteration=%d off=%d" % (i, off), WRITE_BYTES)
        t0 = time.monotonic()
        x.pwrite(data, off)
        x.flush()
        t1 = time.monotonic()
        got = y.pread(READ_BYTES, off)
        t2 = time.monotonic()
        got2 = y.pread(READ_BYTES, off + READ_BYTES)
        t3 = time.monotonic()
        if got != data[:READ_BYTES] or got2 != data[READ_BYTES:2 * READ_BYTES]:
            sys.exit("handover: iteration %d read back other data" % i)
        write.append(ms(t1 - t0))
        first.append(ms(t2 - t1))
        warm.append(ms(t3 - t2))
    summary("write 64 KiB + flush (owner)", write)
    summary("first 4 KiB read on the other", first)
    # Each gateway is recalled every second iteration: the first EARLY_ITERATIONS switches
    # come before any ping-pong back-off can start (4 recalls of one gateway by default), so
    # they are pure direct-I/O hand-overs; later ones may go through the MDS path.
    summary("  of which the first %d switches" % EARLY_ITERATIONS, first[:EARLY_ITERATIONS])
    summary("second 4 KiB read (warm)", warm)


def writes(h, gen, turn_bytes, start):
    for off in range(start, start + turn_bytes, WRITE_BYTES):
        h.pwrite(pattern("pingpong gen=%d off=%d" % (gen, off), WRITE_BYTES), off)
    h.flush()


def pingpong(writers, turn_bytes):
    turns = PINGPONG_TOTAL_BYTES // turn_bytes
    t0 = time.monotonic()
    for t in range(turns):
        writes(writers[t % len(writers)], t, turn_bytes, (t * turn_bytes) % RANGE_BYTES)
    elapsed = time.monotonic() - t0
    # The last turn's data, read back through the other side, must be there.
    last = turns - 1
    off = (last * turn_bytes) % RANGE_BYTES
    reader = writers[(last + 1) % len(writers)]
    want = pattern("pingpong gen=%d off=%d" % (last, off), WRITE_BYTES)
    if reader.pread(WRITE_BYTES, off) != want:
        sys.exit("pingpong: the last turn's write is not read back")
    return PINGPONG_TOTAL_BYTES / MIB / elapsed, turns


def main():
    uri_a, uri_b, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3])
    a, b = connect(uri_a), connect(uri_b)
    print("== first direct I/O after a switch (%d iterations, alternating A/B)" % iterations)
    handover(a, b, iterations)
    print("== one 1 MiB range, %d MiB written in 64 KiB writes, a flush per turn"
          % (PINGPONG_TOTAL_BYTES // MIB))
    for turn in (MIB, WRITE_BYTES):
        alone, n = pingpong([a], turn)
        both, _ = pingpong([a, b], turn)
        print("turn %4d KiB (%4d turns): A alone %8.2f MiB/s   A/B ping-pong %8.2f MiB/s   (%.1fx slower)"
              % (turn // KIB, n, alone, both, alone / both))
    a.shutdown()
    b.shutdown()


if __name__ == "__main__":
    main()
