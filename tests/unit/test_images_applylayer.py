"""Unit tests for applying layers over one directory (images/applylayer.py): later
layers replace files, `.wh.<name>` removes what earlier layers put there and
`.wh..wh..opq` empties a directory of it, keeping what the layer itself puts there."""
from __future__ import annotations

import gzip
import io
import os
import sys
from pathlib import Path

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.errors import InvalidParameter
from pydockerd.images.applylayer import apply_layer
from pydockerd.testing.archive import LayerTar


def _tar(entries: list[tuple[str, bytes | None]]) -> io.BytesIO:
    """A gzip layer of (name, data): data None is a directory."""
    layer = LayerTar(owner=(os.getuid(), os.getgid()))
    for name, data in entries:
        if data is None:
            layer.dir(name)
        else:
            layer.file(name, data)
    return io.BytesIO(gzip.compress(layer.finish()))


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): ("/" if p.is_dir() else p.read_text())
            for p in sorted(root.rglob("*"))}


def test_whiteouts_and_opaque_dirs_of_later_layers(tmp_path: Path) -> None:
    apply_layer(_tar([("a", None), ("a/old", b"1"), ("a/sub", None), ("a/sub/deep", b"2"),
                      ("b", None), ("b/gone", b"3"), ("b/stays", b"4"), ("top", b"5"),
                      ("gonedir", None), ("gonedir/x", b"6")]), str(tmp_path))
    # the opaque marker after the layer's own entry of that directory, and before
    apply_layer(_tar([("a", None), ("a/new", b"7"), ("a/.wh..wh..opq", b""),
                      ("b/.wh.gone", b""), (".wh.gonedir", b""), ("top", b"8"),
                      ("c", None), ("c/.wh..wh..opq", b""), ("c/mine", b"9")]),
                str(tmp_path))
    assert _tree(tmp_path) == {"a": "/", "a/new": "7", "b": "/", "b/stays": "4",
                               "c": "/", "c/mine": "9", "top": "8"}


def test_opaque_keeps_what_the_layer_put_below(tmp_path: Path) -> None:
    apply_layer(_tar([("d", None), ("d/s", None), ("d/s/old", b"1"), ("d/t", b"2")]),
                str(tmp_path))
    apply_layer(_tar([("d", None), ("d/s", None), ("d/s/new", b"3"),
                      ("d/.wh..wh..opq", b"")]), str(tmp_path))
    assert _tree(tmp_path) == {"d": "/", "d/s": "/", "d/s/new": "3"}


def test_bad_whiteout_and_escapes_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter):
        apply_layer(_tar([(".wh.", b"")]), str(tmp_path))
    with pytest.raises(InvalidParameter):
        apply_layer(_tar([("../out", b"x")]), str(tmp_path))
    assert not (tmp_path.parent / "out").exists()
