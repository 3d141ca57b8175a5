#!/usr/bin/env python3
"""The import graph of siuo's crates: which file names which, checked for
circles.

Every crate of the workspace is read (its `src/`); a file imports another
when it names an item the other defines, through `use` or a path in its
code (`crate::`, `super::`, `self::`, a child module, or another crate of
the workspace). A folder's `mod.rs` (or `lib.rs`) that re-exports an item
of a child is looked through: naming `crate::review::Ledger` is an import
of `review/ledger.rs`. Unit-test modules (`#[cfg(test)] mod tests`) are not
read: a test may use what it tests from anywhere.

    tools/import_graph.py             # checks: exit 1 and the circles, if any
    tools/import_graph.py --dot       # the drawing, in Graphviz's DOT
    tools/import_graph.py --modules   # the same by top-level module

Cargo already refuses a circle between crates; this finds the circles
inside one, which the compiler allows.
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def workspace_crates():
    """(package name, crate name as used in paths, src folder) of each member."""
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    crates = []
    for member in manifest["workspace"]["members"]:
        package = tomllib.loads((ROOT / member / "Cargo.toml").read_text())
        name = package["package"]["name"]
        lib = package.get("lib", {}).get("path", "src/lib.rs")
        src = (ROOT / member / lib).parent
        crates.append((name, name.replace("-", "_"), src))
    return crates


def module_files(src):
    """Module path (tuple) -> file, for one crate."""
    files = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts == ["lib"] or parts == ["main"]:
            parts = [] if parts == ["lib"] else ["<main>"]
        elif parts[-1] == "mod":
            parts = parts[:-1]
        files.setdefault(tuple(parts), path)
    return files


def code_of(path):
    """The file's text without comments, strings and unit-test modules."""
    text = path.read_text()
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    cut = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text)
    if cut:
        text = text[: cut.start()]
    return text


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (as lists of segments)."""
    tree = re.sub(r"\s+", "", tree)
    tree = re.sub(r"\bas" + IDENT, "", tree)

    def split_top(s):
        depth, parts, start = 0, [], 0
        for i, c in enumerate(s):
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        return [p for p in parts if p]

    def walk(prefix, s):
        if "{" in s:
            head, _, rest = s.partition("{")
            inner = rest[: rest.rfind("}")]
            head = [h for h in head.split("::") if h]
            out = []
            for part in split_top(inner):
                out.extend(walk(prefix + head, part))
            return out
        return [prefix + [h for h in s.split("::") if h]]

    return walk([], tree)


def absolute_path(segments, module, children, crate_names):
    """(crate name, or "" for this crate; segments from its root) of a path
    written in `module`, or None for a path outside the workspace."""
    if not segments:
        return None
    head = segments[0]
    if head == "crate":
        return ("", segments[1:])
    if head in crate_names:
        return (head, segments[1:])
    if head == "self":
        return ("", list(module) + segments[1:])
    if head == "super":
        base = list(module)
        while segments and segments[0] == "super":
            base = base[:-1]
            segments = segments[1:]
        return ("", base + segments)
    if head in children:
        return ("", list(module) + segments)
    return None


def references(code, module, children, crate_names):
    """Paths (crate, segments) the code names, as absolute module paths."""
    found = []
    for use in re.finditer(r"\buse\s+([^;]+);", code):
        for path in expand_use(use.group(1)):
            ref = absolute_path(path, module, children, crate_names)
            if ref:
                found.append(ref)
    heads = ["crate", "super", "self"] + sorted(crate_names) + sorted(children)
    pattern = r"\b(" + "|".join(map(re.escape, heads)) + r")((?:::" + IDENT + r")+)"
    for match in re.finditer(pattern, code):
        segments = [match.group(1)] + [s for s in match.group(2).split("::") if s]
        ref = absolute_path(segments, module, children, crate_names)
        if ref:
            found.append(ref)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dot", action="store_true", help="print the file graph as DOT")
    parser.add_argument("--modules", action="store_true", help="print the graph of top-level modules as DOT")
    args = parser.parse_args()

    crates = workspace_crates()
    crate_names = {c[1] for c in crates}
    nodes = {}  # (crate, module path) -> file
    reexports = {}  # (crate, module, name) -> (crate, path of the item)
    codes = {}
    for _, crate, src in crates:
        for module, path in module_files(src).items():
            nodes[(crate, module)] = path
            codes[(crate, module)] = code_of(path)
    def children_of(crate, module):
        return {
            m[-1]
            for (c, m) in nodes
            if c == crate and len(m) == len(module) + 1 and m[: len(module)] == module
        }

    # A re-export names the item where it is defined: a path through it
    # is an import of that file, not of the module re-exporting it.
    for (crate, module), code in codes.items():
        for use in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", code):
            for path in expand_use(use.group(1)):
                ref = absolute_path(path, module, children_of(crate, module), crate_names - {crate})
                if ref and path[-1] not in ("*", "self"):
                    reexports[(crate, module, path[-1])] = (ref[0] or crate, ref[1])

    def resolve(crate, segments, depth=0):
        for length in range(len(segments), -1, -1):
            candidate = (crate, tuple(segments[:length]))
            if candidate in nodes:
                rest = segments[length:]
                again = reexports.get((crate, candidate[1], rest[0])) if rest else None
                if again and depth < 20:
                    return resolve(again[0], list(again[1]) + rest[1:], depth + 1)
                return candidate
        return None

    edges = {node: set() for node in nodes}
    for (crate, module), code in codes.items():
        children = children_of(crate, module)
        for ref_crate, segments in references(code, module, children, crate_names - {crate}):
            target = resolve(ref_crate or crate, segments)
            if target and target != (crate, module):
                edges[(crate, module)].add(target)

    def name(node):
        crate, module = node
        return f"{crate}::{'::'.join(module) or '(root)'}"

    # Tarjan's strongly connected components.
    index, low, stack, on_stack, components = {}, {}, [], set(), []
    counter = [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    sys.setrecursionlimit(10_000)
    for v in sorted(nodes):
        if v not in index:
            connect(v)
    circles = [sorted(c) for c in components if len(c) > 1]

    if args.dot or args.modules:
        print("digraph siuo {\n  rankdir=LR;\n  node [shape=box, fontname=Helvetica];")
        if args.modules:
            top = lambda n: (n[0], n[1][:1])
            pairs = {(top(a), top(b)) for a, targets in edges.items() for b in targets if top(a) != top(b)}
            for a, b in sorted(pairs):
                print(f'  "{name(a)}" -> "{name(b)}";')
        else:
            for a in sorted(edges):
                for b in sorted(edges[a]):
                    print(f'  "{name(a)}" -> "{name(b)}";')
        print("}")
    if circles:
        for circle in circles:
            print("import circle: " + " <-> ".join(name(n) for n in circle), file=sys.stderr)
        return 1
    if not (args.dot or args.modules):
        print(f"{len(nodes)} files in {len(crates)} crates, {sum(len(e) for e in edges.values())} imports, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
