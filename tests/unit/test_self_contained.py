"""A clone of the repository has everything its code, tests and benchmarks need.

Scans src/ tests/ bench/ scripts/ .ci/ (and pyproject.toml, README.md) for references
outside the repository: the sibling folder the test images once came from, the
build machine's work tree, and relative paths that climb above the repository
root (`Path(__file__).parents[N]`, `.parent` chains, `ROOT.parent`,
`$(dirname "$0")/../..`). Tests find everything relative to the repository and
make what they need under a temporary directory.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ["src", "tests", "bench", "scripts", ".ci", "pyproject.toml", "README.md"]
SKIPPED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}

# (what, pattern); this file is left out of the scan: its examples would match
FORBIDDEN = [
    ("a sibling folder of the repository", re.compile(r"\.\./shared\b|/shared/testimages")),
    ("the build machine's work tree", re.compile(r"(?:^|[\s'\"=(:\[,])/work/")),
    ("the old external image tool", re.compile(r"\bmkimage\.py\b")),
    ("the repository root's parent", re.compile(
        r"\b(?:ROOT|REPO|REPO_ROOT)(?:\.parent\b|\s*/\s*['\"]\.\.['\"]|,\s*['\"]\.\.['\"])")),
]
PARENTS_INDEX = re.compile(r"__file__\)?(?:\.resolve\(\))?\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"__file__\)?(?:\.resolve\(\))?((?:\.parent\b)+)")
DIRNAME = re.compile(r"\bdirname\(")
SHELL_UP = re.compile(r"dirname \"?\$(?:0|\{BASH_SOURCE\[0\]\})\"?\)\"?((?:/\.\.)+)")


def problems(rel: str, text: str) -> list[str]:
    """What in file `rel` (path relative to the repository) reaches outside it."""
    depth = len(Path(rel).parts)            # levels from the file up to the root, + 1
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{lineno}: "
        found += [where + what for what, pattern in FORBIDDEN if pattern.search(line)]
        ups = [int(n) + 1 for n in PARENTS_INDEX.findall(line)]
        ups += [chain.count(".parent") for chain in PARENT_CHAIN.findall(line)]
        if "__file__" in line and DIRNAME.search(line):
            ups.append(len(DIRNAME.findall(line)))
        ups += [chain.count("..") + 1 for chain in SHELL_UP.findall(line)]
        found += [where + f"climbs {n} levels from a file {depth - 1} below the root"
                  for n in ups if n > depth]
    return found


def _files() -> list[Path]:
    out = []
    for name in SCANNED:
        top = ROOT / name
        if top.is_file():
            out.append(top)
            continue
        out += [p for p in top.rglob("*") if p.is_file()
                and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)
                and p.suffix not in {".pyc", ".tar", ".gz"}]
    return [p for p in out if p != Path(__file__).resolve()]


def test_nothing_refers_outside_the_repository() -> None:
    found = []
    for path in _files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += problems(path.relative_to(ROOT).as_posix(), text)
    assert not found, "references outside the repository:\n" + "\n".join(found)


def test_the_scan_sees_escapes() -> None:
    up = ".."
    assert problems("tests/conftest.py", "ROOT = Path(__file__).resolve().parents[1]") == []
    assert problems("tests/conftest.py", "X = Path(__file__).resolve().parents[2]")
    assert problems("tests/unit/t.py", "R = Path(__file__).resolve().parents[2]") == []
    assert problems("tests/unit/t.py", "R = Path(__file__).parent.parent.parent.parent")
    assert problems("bench/b.py", "os.path.dirname(os.path.dirname(__file__))") == []
    assert problems("bench/b.py", "os.path.dirname(os.path.dirname(os.path.dirname(__file__)))")
    assert problems("bench/b.py", "T = ROOT.parent / 'x'")
    assert problems("bench/b.py", f"T = ROOT / '{up}' / 'x'")
    assert problems("scripts/t.sh", f'cd "$(dirname "$0")/{up}"') == []
    assert problems("scripts/t.sh", f'cd "$(dirname "$0")/{up}/{up}"')
    assert problems("tests/x.py", f"p = '{up}/shared/tool.py'")
    assert problems("tests/x.py", "p = '/work/shared/x'")
    assert problems("tests/x.py", "run('/tmp/work/x', 'containers/<id>/work/')") == []
    assert problems("tests/x.py", "subprocess.run([sys.executable, 'mkimage.py'])")
