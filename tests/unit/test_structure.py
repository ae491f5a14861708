"""The shape of src/pydockerd: no import cycles, small modules, no `Any` between services.

Import graph: every `import`/`from ... import` of a pydockerd module counts, wherever
it is written: at module level, under `if TYPE_CHECKING:`, or inside a function. A
type-only or function-local import that closes a circle is still a circle in spirit
(the two modules cannot be understood, tested or moved apart); fix it by moving the
shared piece to a lower module, or by a small typing.Protocol in the lower module.
The only edges left out are the implicit ones from a submodule to its own package
(`pkg/__init__.py` re-exporting from `pkg.x` is no cycle).

Needs neither root nor a daemon.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "pydockerd"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

MAX_LINES = 400
# pure data tables, allowed to be long
DATA_TABLES = {"runtime/seccomp.py"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the pydockerd modules it imports (anywhere in its text)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [*subs, target]
            for t in targets:
                while t and t not in mods:         # `import pydockerd.x.y` names a module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_checker_finds_a_cycle() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [frozenset({"a", "b", "c"})]


def test_no_import_cycles() -> None:
    found = [sorted(c) for c in cycles(import_graph())]
    assert not found, f"import cycles in src/pydockerd: {found}"


def test_modules_are_small() -> None:
    big = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        n = len(path.read_text().splitlines())
        if n > MAX_LINES and rel not in DATA_TABLES:
            big[rel] = n
    assert not big, f"modules above {MAX_LINES} lines: {big}"


def test_allowlists_are_not_stale() -> None:
    for rel in DATA_TABLES:
        assert (PKG / rel).exists(), f"{rel} is allowlisted but does not exist"


def test_daemon_services_are_not_typed_any_to_each_other() -> None:
    """The classes daemon.py constructs take no `Any`-annotated parameter."""
    tree = ast.parse((PKG / "daemon.py").read_text())
    imported: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for a in node.names:
                imported[a.asname or a.name] = (f"pydockerd.{node.module}", a.name)
    called = {n.func.id for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    offenders = {}
    for name in sorted(called & imported.keys()):
        module, attr = imported[name]
        obj = getattr(importlib.import_module(module), attr)
        if not inspect.isclass(obj):
            continue
        annotations = getattr(obj.__init__, "__annotations__", {})
        bad = sorted(k for k, v in annotations.items() if re.search(r"\bAny\b", str(v)))
        if bad:
            offenders[name] = bad
    assert not offenders, f"constructor parameters typed Any: {offenders}"
