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
from typing import Any

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


# the composition root: the daemon process and the services it composes
ROOT_MODULES = ("daemon.py", "composition.py")


def _daemon_tree() -> ast.Module:
    """daemon.py and composition.py as one module (their imports and their code)."""
    body: list[ast.stmt] = []
    for name in ROOT_MODULES:
        body.extend(ast.parse((PKG / name).read_text()).body)
    return ast.Module(body=body, type_ignores=[])


def _load(module: str, attr: str) -> object:
    """`from module import attr`: a name in the module, or its submodule."""
    mod = importlib.import_module(module)
    if hasattr(mod, attr):
        return getattr(mod, attr)
    return importlib.import_module(f"{module}.{attr}")


def daemon_callables() -> dict[str, object]:
    """What daemon.py calls from pydockerd: the classes it constructs and the
    functions it calls (`X(...)` of an imported name, `module.f(...)` of an imported
    module, e.g. container_routes.routes)."""
    tree = _daemon_tree()
    imported: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for a in node.names:
                imported[a.asname or a.name] = (f"pydockerd.{node.module}", a.name)
    out: dict[str, object] = {}
    for n in ast.walk(tree):
        if not isinstance(n, ast.Call):
            continue
        if isinstance(n.func, ast.Name) and n.func.id in imported:
            out[n.func.id] = _load(*imported[n.func.id])
        elif isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name) \
                and n.func.value.id in imported:
            owner = _load(*imported[n.func.value.id])
            if inspect.ismodule(owner):
                out[f"{n.func.value.id}.{n.func.attr}"] = getattr(owner, n.func.attr)
    return out


def _bare_any(annotation: object) -> bool:
    """`Any`, `Any | None`, `Optional[Any]`: a value of unknown kind. A JSON document
    (`dict[str, Any]`) is a document, not a collaborator, and is not flagged."""
    text = re.sub(r"\s", "", str(annotation))
    return text in ("Any", "Any|None", "None|Any", "Optional[Any]", "typing.Any",
                    "typing.Optional[typing.Any]")


def any_parameters(obj: object) -> list[str]:
    """Parameters typed with a bare Any: of a class's constructor and public methods,
    or of a function (**kwargs of record fields are not collaborators)."""
    functions: list[tuple[str, object]] = []
    if inspect.isclass(obj):
        functions = [(m, f) for m, f in inspect.getmembers(obj, inspect.isfunction)
                     if not m.startswith("_") or m == "__init__"]
    elif inspect.isfunction(obj):
        functions = [(obj.__name__, obj)]
    bad = []
    for fname, fn in functions:
        params = inspect.signature(fn).parameters  # type: ignore[arg-type]
        for k, v in getattr(fn, "__annotations__", {}).items():
            if k == "return" or (k in params and params[k].kind == params[k].VAR_KEYWORD):
                continue
            if _bare_any(v):
                bad.append(f"{fname}({k})")
    return sorted(bad)


def test_checker_finds_any_parameters() -> None:
    class Svc:
        def __init__(self, images: Any) -> None: ...
        def commit(self, containers: Any | None, doc: dict[str, Any],
                   **changes: Any) -> None: ...
        def _private(self, x: Any) -> None: ...
    assert any_parameters(Svc) == ["__init__(images)", "commit(containers)"]


def test_daemon_services_are_not_typed_any_to_each_other() -> None:
    """Nothing daemon.py constructs or calls takes a parameter typed `Any`, in its
    constructor or in any public method: collaborators are small Protocols or the
    concrete service classes."""
    offenders = {name: bad for name, obj in sorted(daemon_callables().items())
                 if (bad := any_parameters(obj))}
    assert not offenders, f"parameters typed Any: {offenders}"


def foreign_assignments(tree: ast.AST) -> list[str]:
    """`x.attr = ...` (or +=) where x is not `self`, `self.a.b = ...`, setattr(...),
    and `x.attr.append(...)`-style mutation of another object's collections: wiring
    by assignment after construction."""
    bad: list[str] = []
    for n in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(n, ast.Assign):
            targets = list(n.targets)
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)):
            targets = [n.target]
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) and not (
                        isinstance(sub.value, ast.Name) and sub.value.id == "self"):
                    bad.append(f"line {n.lineno}: {ast.unparse(sub)} = ...")
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "setattr":
            bad.append(f"line {n.lineno}: {ast.unparse(n)}")
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) \
                and n.func.attr in ("append", "extend", "add", "insert", "update") \
                and isinstance(n.func.value, ast.Attribute) \
                and not (isinstance(n.func.value.value, ast.Name)
                         and n.func.value.value.id == "self"):
            bad.append(f"line {n.lineno}: {ast.unparse(n)}")
    return bad


def test_checker_finds_foreign_assignments() -> None:
    tree = ast.parse("self.a = 1\nself.images.hook = f\nvolumes.users = g\n"
                     "self.networks.hooks.append(h)\nlines.append(x)\nself.x += 1\n"
                     "setattr(svc, 'cfg', c)\n")
    assert foreign_assignments(tree) == [
        "line 2: self.images.hook = ...", "line 3: volumes.users = ...",
        "line 4: self.networks.hooks.append(h)", "line 7: setattr(svc, 'cfg', c)"]


# settings of library objects daemon.py makes itself (not services)
ASSIGNMENTS_ALLOWED = {"ctx.verify_mode": "ssl.SSLContext: client certificates required"}


def test_daemon_wires_by_constructor_only() -> None:
    """daemon.py sets no attribute of another object: a service gets its collaborators
    through its constructor, never by assignment after it was built."""
    bad = [b for b in foreign_assignments(_daemon_tree())
           if b.split(": ", 1)[1].removesuffix(" = ...") not in ASSIGNMENTS_ALLOWED]
    assert not bad, f"daemon.py wires by assignment: {bad}"


# getattr/hasattr on values whose kind is not a service: (module, first argument).
# Anything else probing an object for a feature is a missing interface.
PROBING_ALLOWED = {
    ("cli.py", "ns"): "argparse.Namespace: optional flags",
    ("util/signals.py", "signal.Signals"): "a signal enum member by name",
    ("runtime/rlimits.py", "resource"): "RLIMIT_* constants of the resource module by name",
    ("errors.py", "exc"): "sqlite3 errors carry sqlite_errorcode only on some Pythons",
    ("containers/validate.py", "h"): "a HostConfig Struct field by name (table-driven)",
    ("containers/update.py", "upd"): "an UpdateConfig Struct field by name (table-driven)",
    ("images/newimage.py", "user"): "a ContainerConfig Struct field by name (table-driven)",
    ("images/loader.py", "src"): "a file object: its raw stream's size, when it has one",
    ("images/loader.py", "getattr(src, 'raw', None)"): "(same)",
    ("images/changes.py", "applier"): "dispatch of a Dockerfile-style change to its method",
    ("api/wire_progress.py", "events"): "an async iterator: aclose() when it is a generator",
    ("api/respond.py", "it"): "an async iterator: aclose() when it is a generator",
    ("util/tlsdefer.py", "finder"): "importlib finders are duck-typed (PEP 451 find_spec)",
    ("util/tlsdefer.py", "spec.loader"): "(same: a loader's exec_module)",
    ("util/tlsdefer.py", "self._inner"): "(same: the wrapped loader's other methods)",
    ("api/decode.py", "t.cls"): "a model class's optional Go type name for error messages",
    ("util/lazy.py", "module"):
        "a lazily imported module: the attribute read forwarded to the real module",
}


def probing_calls() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        for n in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) \
                    and n.func.id in ("getattr", "hasattr") and n.args:
                found.add((rel, ast.unparse(n.args[0])))
    return found


def test_no_service_probes_another_with_getattr() -> None:
    unexpected = sorted(probing_calls() - PROBING_ALLOWED.keys())
    assert not unexpected, f"getattr/hasattr outside the allowlist: {unexpected}"


def test_probing_allowlist_is_not_stale() -> None:
    stale = sorted(PROBING_ALLOWED.keys() - probing_calls())
    assert not stale, f"allowlisted getattr/hasattr no longer in src: {stale}"


def test_test_module_names_are_unique() -> None:
    """pytest (rootdir-based imports, no packages) stops at collection when two test
    modules share a basename, so the whole suite would not run."""
    tests = Path(__file__).resolve().parents[1]
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted(tests.rglob("*.py")):
        if path.name in seen and path.name != "__init__.py":
            clashes.append(f"{seen[path.name].relative_to(tests)} ~ {path.relative_to(tests)}")
        seen.setdefault(path.name, path)
    assert clashes == []
