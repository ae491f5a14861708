"""Tar-split: a layer's tar rebuilt from its unpacked dir is byte-identical."""
from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from pydockerd.images.tarsafe import unpack_layer
from pydockerd.images.tarsplit import Replay, load, write


def _tar(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        def add(name: str, data: bytes | None = None, **kw: object) -> None:
            ti = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
        add("etc", type=tarfile.DIRTYPE, mode=0o755)
        add("etc/hosts", b"127.0.0.1 localhost\n", mode=0o644, mtime=1700000000)
        add("etc/empty", b"")
        add("etc/" + "long" * 40, b"x" * 5000, uname="üser")
        add("etc/.wh.gone", b"")
        add("etc/link", type=tarfile.SYMTYPE, linkname="hosts")
        add("etc/hard", type=tarfile.LNKTYPE, linkname="etc/hosts")
        add("big", b"\0" * 1024)
    return buf.getvalue() + b"\0" * 1024          # extra trailing zeros, as some tools write


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_replay_is_byte_identical(tmp_path, fmt):
    if fmt == tarfile.USTAR_FORMAT:
        data = _tar(tarfile.GNU_FORMAT)
    else:
        data = _tar(fmt)
    root = tmp_path / "diff"
    root.mkdir()
    res = unpack_layer(io.BytesIO(data), str(root), record=True)
    assert res.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert res.split is not None
    write(res.split, str(tmp_path))
    split = load(str(tmp_path))
    assert split is not None
    out = b"".join(Replay(str(tmp_path), str(root), split, res.diff_id).chunks(bufsize=700))
    assert out == data


def test_duplicate_names_have_no_split(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for body in (b"one", b"second"):
            ti = tarfile.TarInfo("f")
            ti.size = len(body)
            tar.addfile(ti, io.BytesIO(body))
    root = tmp_path / "diff"
    root.mkdir()
    assert unpack_layer(io.BytesIO(buf.getvalue()), str(root), record=True).split is None


def test_changed_file_is_detected(tmp_path):
    data = _tar(tarfile.PAX_FORMAT)
    root = tmp_path / "diff"
    root.mkdir()
    res = unpack_layer(io.BytesIO(data), str(root), record=True)
    assert res.split is not None
    write(res.split, str(tmp_path))
    with open(root / "big", "r+b") as f:
        f.write(b"\1")
    with pytest.raises(Exception, match="changed on disk"):
        b"".join(Replay(str(tmp_path), str(root), res.split, res.diff_id).chunks())
    os.unlink(root / "big")
    with pytest.raises(OSError):
        b"".join(Replay(str(tmp_path), str(root), res.split, res.diff_id).chunks())
