#!/usr/bin/env python3
"""Import circles between the files of one crate.

Usage: tests/tools/import_circles.py CRATE/src [MODULE_PREFIX]

Each .rs file below CRATE/src is a module (lib.rs/main.rs the root, x/mod.rs and x.rs the
module x). An edge A -> B is drawn when file A names module B in a path: `use crate::b::..`,
`use super::..`, `use self::..`, a bare `use child::..` of its own child module, or the same
paths inline (`crate::b::f()`); the longest module prefix of the path that is a file counts.
Edges to the crate root are left out (lib.rs declares everything). A module root's
`pub use` re-exports count too: a child that imports from its parent's facade instead of
from the defining sibling shows up as a circle. Prints each module's edges (those under
MODULE_PREFIX when given) and the strongly connected groups of more than one file.
"""
import pathlib
import re
import sys


def modules(src):
    mods = {}
    for f in src.rglob("*.rs"):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if "bin" in parts:
            continue
        if parts[-1] in ("lib", "main"):
            parts = parts[:-1]
        elif parts[-1] == "mod":
            parts = parts[:-1]
        mods[tuple(parts)] = f
    return mods


def edges_of(mods):
    def resolve(path):
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in mods:
                return tuple(path[:n])
        return ()

    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = re.sub(r"//[^\n]*", "", f.read_text())
        for mo in re.finditer(r"\buse\s+(\w+)::", text):
            child = m + (mo.group(1),)
            if child in mods:
                edges[m].add(child)
        for mo in re.finditer(r"\b(crate|super|self)((?:::\w+)+)(::\{[^;]*?\})?", text):
            head, rest, group = mo.groups()
            segs = rest.strip(":").split("::")
            base = [] if head == "crate" else list(m) if head == "self" else list(m[:-1])
            while segs and segs[0] == "super":
                base, segs = base[:-1], segs[1:]
            targets = [base + segs]
            if group:
                targets += [base + segs + [item] for item in re.findall(r"\b(\w+)\b", group)]
            for t in targets:
                r = resolve(t)
                if r not in (m, ()):
                    edges[m].add(r)
    return edges


def circles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(group)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    src = pathlib.Path(sys.argv[1])
    prefix = sys.argv[2] if len(sys.argv) > 2 else ""
    name = lambda m: "::".join(m) or "(root)"
    edges = edges_of(modules(src))
    for m in sorted(edges):
        if name(m).startswith(prefix):
            print(name(m), "->", ", ".join(sorted(name(x) for x in edges[m])))
    found = [sorted(name(x) for x in g) for g in circles(edges) if any(name(x).startswith(prefix) for x in g)]
    print("circles:", found or "none")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
