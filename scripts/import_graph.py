"""The first-party import graph of wdsweep's packages, and its cycles.

    python scripts/import_graph.py [packages...]      (default: trainer sweep analysis)

Every module is parsed with `ast` (nothing is imported). An import counts as

* module-level: executed when the module is imported (top level, class bodies,
  module-level ``if`` / ``try`` blocks);
* lazy: inside a function, executed on the first call (marked ``(lazy)``);
* typing-only: under ``if TYPE_CHECKING:`` -- never executed, left out of the graph.

``import a.b`` and ``from a import b`` (b a submodule) are edges to ``a.b``; ``from a.b
import name`` is an edge to ``a.b``; relative imports are resolved against the module's
package. The implicit import of a module's parent packages is not an edge (as in other
import linters): otherwise every submodule would form a cycle with its package's
``__init__``. Dynamic imports (``importlib.import_module(name)``) are not seen.

Prints each module with the first-party modules it imports, then every cycle (a strongly
connected component of more than one module, with one path around it); exits 1 if any.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ("trainer", "sweep", "analysis")
MODULE, LAZY = "module", "lazy"


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: dict[str, str] = field(default_factory=dict)  # first-party target -> kind
    external: dict[str, str] = field(default_factory=dict)  # top-level package -> kind


def discover(root: Path, packages: list[str]) -> dict[str, Module]:
    mods: dict[str, Module] = {}
    for pkg in packages:
        base = root / pkg
        if not (base / "__init__.py").is_file():
            raise SystemExit(f"{base}: not a package (no __init__.py)")
        for p in sorted(base.rglob("*.py")):
            if "__pycache__" in p.parts:
                continue
            parts = list(p.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            mods[name] = Module(name, p, is_package)
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, lazy: bool):
    """(import node, lazy) for every import executed at import time or in a function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:  # `else:` of TYPE_CHECKING does run
                yield from _walk(ast.Module(body=[sub], type_ignores=[]), lazy)
        else:
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _walk(child, inner)


def _targets(mod: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """Dotted names the import loads (first-party resolved to the deepest known module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: against the module's package
        pkg = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
        up = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
        base = ".".join([*up, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        out.append(sub if sub in known else base)  # `from pkg import submodule`
    return out


def _first_party(name: str, known: set[str]) -> str | None:
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def build(root: Path = ROOT, packages: list[str] | tuple[str, ...] = DEFAULT
          ) -> dict[str, Module]:
    """The graph over `packages`: edges between their modules, other imports as external
    top-level names (an import of an unscanned first-party package counts as external)."""
    mods = discover(root, list(packages))
    known = set(mods)
    for mod in mods.values():
        tree = ast.parse(mod.path.read_text(encoding="utf-8"), str(mod.path))
        for node, lazy in _walk(tree, False):
            kind = LAZY if lazy else MODULE
            for target in _targets(mod, node, known):
                fp = _first_party(target, known)
                into, key = (mod.imports, fp) if fp else (mod.external, target.split(".")[0])
                if key and key != mod.name and into.get(key) != MODULE:
                    into[key] = kind  # a module-level import of the same target wins
    return mods


def cycles(mods: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth <= number of modules (a few hundred)
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in mods[v].imports:
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

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return sorted(out)


def path_around(mods: dict[str, Module], comp: list[str]) -> list[str]:
    """One cycle through comp[0] inside the component (breadth first: a shortest one)."""
    start, inside = comp[0], set(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(mods[v].imports):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start]
                if w in inside and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def reach(mods: dict[str, Module], start: str, kinds: tuple[str, ...] = (MODULE, LAZY)
          ) -> set[str]:
    """Modules `start` loads transitively through edges of `kinds` (start included)."""
    seen, todo = {start}, [start]
    while todo:
        for w, kind in mods[todo.pop()].imports.items():
            if kind in kinds and w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def main(argv: list[str]) -> int:
    packages = argv or list(DEFAULT)
    mods = build(ROOT, packages)
    for name in sorted(mods):
        deps = [f"{t} (lazy)" if k == LAZY else t for t, k in sorted(mods[name].imports.items())]
        print(f"{name} -> {', '.join(deps) if deps else '(none)'}")
    found = cycles(mods)
    for comp in found:
        print(f"cycle ({len(comp)} modules): {' -> '.join(path_around(mods, comp))}"
              f"  [{', '.join(comp)}]")
    print(f"{len(mods)} modules, {len(found)} cycles" if found else f"{len(mods)} modules, "
          "no cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
