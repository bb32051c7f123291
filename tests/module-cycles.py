#!/usr/bin/env python3
"""Cycles between the modules of a Rust crate's src/ (production code: the
text before a file's first `#[cfg(test)]`), at two levels:
  - top-level modules (`crate::x`), and
  - files (`crate::a::b`, `super::x`, `self::x`, and grouped
    `use crate::{a, b::c}` imports, resolved to the files that hold them),
ignoring edges between a module and its own ancestors (a child using its
parent's items is idiomatic). Dependencies must point one way: the CLI and
the daemon down to the service layer, which points down to store, net and
core (docs/architecture.md).

Usage: module-cycles.py SRC_DIR...   prints each cycle; exit 1 if any.
"""
import os
import re
import sys
from collections import defaultdict

PATH = re.compile(r"\b((?:crate|super|self)(?:::(?:[A-Za-z_][A-Za-z0-9_]*|\{[^;]*?\}))+)")


def modules(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, name), src).split(os.sep)
            if rel[-1] in ("mod.rs", "main.rs", "lib.rs"):
                mod = tuple(rel[:-1])
            else:
                mod = tuple(rel[:-1]) + (rel[-1][:-3],)
            files[mod] = os.path.join(root, name)
    return files


def expand(path):
    """`crate::{a, b::{c, d}}` -> [crate::a, crate::b::c, crate::b::d]"""
    m = re.match(r"^(.*?)::\{(.*)\}$", path, re.S)
    if not m:
        return [path]
    head, body = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    out = []
    for p in parts:
        p = re.sub(r"\s+as\s+\w+$", "", p)
        if p == "self":
            out.append(head)
        elif p and p != "*":
            out.extend(expand(head + "::" + p))
    return out


def edges_of(files):
    def resolve(path):
        for k in range(len(path), 0, -1):
            if path[:k] in files:
                return path[:k]
        return None

    edges = defaultdict(set)
    for mod, file in files.items():
        with open(file, encoding="utf-8", errors="replace") as f:
            text = f.read().split("#[cfg(test)]")[0]
        text = re.sub(r"//[^\n]*", "", text)
        for raw in PATH.findall(text):
            for path in expand(re.sub(r"\s+", "", raw)):
                parts = path.split("::")
                if parts[0] == "crate":
                    target = tuple(parts[1:])
                else:
                    base = list(mod)
                    i = 1 if parts[0] == "self" else 0
                    while i < len(parts) and parts[i] == "super":
                        base = base[:-1]
                        i += 1
                    target = tuple(base) + tuple(parts[i:])
                to = resolve(target)
                if to is None or to == mod:
                    continue
                # A module and its ancestors may use each other.
                if to == mod[: len(to)] or mod == to[: len(mod)]:
                    continue
                edges[mod].add(to)
    return edges


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def check(src):
    files = modules(src)
    edges = edges_of(files)
    top = defaultdict(set)
    for a, tos in edges.items():
        for b in tos:
            if a and b and a[0] != b[0]:
                top[a[0]].add(b[0])
    found = []
    for comp in cycles(top):
        found.append("top-level modules: " + " <-> ".join(comp))
    # Files inside one top-level module.
    for comp in cycles(edges):
        if len({m[0] for m in comp if m}) == 1:
            found.append("files: " + " <-> ".join("/".join(m) for m in comp))
    return found, len(files)


def main():
    total = 0
    for src in sys.argv[1:]:
        found, n = check(src)
        for f in found:
            print(f"{src}: cycle between {f}")
        print(f"{src}: {len(found)} module cycles in {n} files")
        total += len(found)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
