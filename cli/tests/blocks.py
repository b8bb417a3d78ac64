#!/usr/bin/python3
"""Self-describing blocks over NBD (libnbd's Python bindings), for the coherence tests.

Every 4 KiB block written says where it belongs and which write made it:
  bytes 0..8     magic b"PNFSBLK1"
  bytes 8..16    its byte offset in the export (big endian)
  bytes 16..24   the generation of the write that made it (big endian)
  bytes 24..4088 filler derived from (offset, generation)
  bytes 4088..   CRC-32 of bytes 0..4088 (big endian, in 8 bytes)
so a reader tells apart zeros, stale data (an older generation), misplaced blocks, and torn
writes, and names the first ones it finds.

Usage: blocks.py URI OP...  with OP one of
  w:OFFSET:LENGTH:GEN    write blocks of generation GEN, then flush (FUA-free; one flush at the end)
  v:OFFSET:LENGTH:GEN    verify that every block there is generation GEN
Exits 0 when every verification held, 1 with a report otherwise, 2 on usage errors.
"""
import hashlib
import struct
import sys
import zlib

import nbd

BLOCK = 4096
CHUNK = 1 << 20
MAGIC = b"PNFSBLK1"


def block(offset, gen):
    head = MAGIC + struct.pack(">QQ", offset, gen)
    seed = hashlib.sha256(head).digest()
    filler = (seed * (BLOCK // len(seed) + 1))[: BLOCK - 8 - len(head)]
    body = head + filler
    return body + struct.pack(">Q", zlib.crc32(body))


def describe(data, offset, gen):
    """None when the block is as expected, else what it is instead."""
    if data == block(offset, gen):
        return None
    if data == bytes(BLOCK):
        return "zeros"
    if data[:8] != MAGIC:
        return "garbage %r" % data[:16]
    body = data[: BLOCK - 8]
    if struct.unpack(">Q", data[BLOCK - 8 :])[0] != zlib.crc32(body):
        return "torn (checksum)"
    found_off, found_gen = struct.unpack(">QQ", data[8:24])
    if found_off != offset:
        return "misplaced: block of offset %d" % found_off
    return "generation %d (expected %d)" % (found_gen, gen)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    h = nbd.NBD()
    h.connect_uri(argv[1])
    bad = []
    checked = 0
    wrote = False
    for op in argv[2:]:
        kind, off, length, gen = op.split(":")
        off, length, gen = int(off), int(length), int(gen)
        if off % BLOCK or length % BLOCK:
            print("unaligned op %s" % op, file=sys.stderr)
            return 2
        for c in range(off, off + length, CHUNK):
            n = min(CHUNK, off + length - c)
            if kind == "w":
                h.pwrite(b"".join(block(b, gen) for b in range(c, c + n, BLOCK)), c)
                wrote = True
            elif kind == "v":
                data = h.pread(n, c)
                for i in range(0, n, BLOCK):
                    checked += 1
                    what = describe(data[i : i + BLOCK], c + i, gen)
                    if what is not None:
                        bad.append((c + i, what))
            else:
                print("unknown op %s" % op, file=sys.stderr)
                return 2
    if wrote:
        h.flush()
    h.shutdown()
    if bad:
        print("%d of %d blocks wrong; first ones:" % (len(bad), checked))
        for off, what in bad[:10]:
            print("  block at %d: %s" % (off, what))
        return 1
    print("ok: %d blocks verified" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
