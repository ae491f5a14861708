"""builder/buildcontext.py: the digest that leaves out times, and the memo file."""
from __future__ import annotations

import asyncio
import gzip
import io
import tarfile
from pathlib import Path

from pydockerd.builder.buildcontext import ContextMemo, Known, tree_digest


def _tar(files: dict[str, bytes], mtime: int = 1_700_000_000, mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), mtime, mode
            if name == "long":
                ti.pax_headers = {"mtime": f"{mtime}.5", "SCHILY.xattr.user.k": "v"}
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_tree_digest_leaves_out_times_only() -> None:
    files = {"Dockerfile": b"FROM busybox\n", "a/b.txt": b"b\n", "long": b"x"}
    base = tree_digest(_tar(files))
    assert base is not None and base.startswith("tree:")
    assert tree_digest(_tar(files, mtime=1_600_000_000)) == base
    assert tree_digest(_tar({**files, "a/b.txt": b"c\n"})) != base
    assert tree_digest(_tar(files, mode=0o755)) != base
    assert tree_digest(_tar(dict(reversed(files.items())))) != base    # other order


def test_tree_digest_none_for_compressed_or_broken() -> None:
    assert tree_digest(gzip.compress(_tar({"a": b"a"}))) is None
    assert tree_digest(b"\x01" * 700) is None


def test_memo_file_round_trip_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "builder" / "contexts.json"
    memo = ContextMemo(str(path), keep=2)
    memo.put(("tree:1", "Dockerfile"), Known("FROM a\n", {("src/", "x"): "dir:abc"}))
    memo.put(("tree:2", "Dockerfile"), Known("FROM b\n"))
    memo.put(("tree:3", "Dockerfile"), Known("FROM c\n"))       # the oldest goes
    asyncio.run(memo.save())
    again = ContextMemo(str(path))
    assert again.get(("tree:1", "Dockerfile")) is None
    got = again.get(("tree:2", "Dockerfile"))
    assert got is not None and got.dockerfile == "FROM b\n"
    memo.put(("tree:2", "Dockerfile"), Known("FROM b\n", {("src/", "x"): "dir:abc"}))
    asyncio.run(memo.save())
    got = ContextMemo(str(path)).get(("tree:2", "Dockerfile"))
    assert got is not None and got.hashes == {("src/", "x"): "dir:abc"}
    path.write_text("{not json")
    stale = path.parent / "contexts.json.tmp4242"        # a writer killed mid-write
    stale.write_text("{")
    assert ContextMemo(str(path)).get(("tree:2", "Dockerfile")) is None
    assert not stale.exists()
    path.write_text('{"version": 1, "contexts": [{"digest": "tree:2"}]}')
    assert ContextMemo(str(path)).get(("tree:2", "Dockerfile")) is None
