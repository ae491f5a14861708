"""Unit tests for untrusted layer extraction (images/tarsafe.py)."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import sys
import tarfile
import threading
import types
from pathlib import Path

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.errors import InvalidParameter
from pydockerd.images import hashreader
from pydockerd.images.tarsafe import OPAQUE_XATTR, unpack_layer

IS_ROOT = os.geteuid() == 0


def make_tar(entries: list[tuple[str, str, bytes | str]], pax: dict[str, dict[str, str]] | None = None
             ) -> bytes:
    """entries: (name, kind, data-or-linkname); kind in f, d, s (symlink), h (hardlink)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            ti.uid, ti.gid = 1234, 4321
            ti.pax_headers = (pax or {}).get(name, {})
            if kind == "f":
                assert isinstance(data, bytes)
                ti.size, ti.mode = len(data), 0o640
                tar.addfile(ti, io.BytesIO(data))
                continue
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o750
            elif kind == "s":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, str(data)
            tar.addfile(ti)
    return buf.getvalue()


def unpack(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    root = tmp_path / "root"
    root.mkdir()
    res = unpack_layer(io.BytesIO(data), str(root))
    return root, res.diff_id


def test_regular_layer_and_diff_id(tmp_path: Path) -> None:
    data = make_tar([("etc", "d", b""), ("etc/hello", "f", b"hi\n"),
                     ("/abs/x", "f", b"abs"), ("./dot/y", "f", b"y"),
                     ("etc/link", "s", "/etc/hello"), ("etc/hard", "h", "etc/hello")])
    root, diff_id = unpack(tmp_path, data)
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (root / "etc/hello").read_bytes() == b"hi\n"
    assert (root / "abs/x").read_bytes() == b"abs"            # leading / stripped
    assert (root / "dot/y").read_bytes() == b"y"
    assert os.readlink(root / "etc/link") == "/etc/hello"
    assert os.stat(root / "etc/hard").st_ino == os.stat(root / "etc/hello").st_ino
    st = os.lstat(root / "etc/hello")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == 1700000000
    assert stat.S_IMODE(os.lstat(root / "etc").st_mode) == 0o750
    assert os.lstat(root / "etc").st_mtime == 1700000000      # dir mtimes set last
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (1234, 4321)


def test_gzip_layer_hashes_uncompressed(tmp_path: Path) -> None:
    data = make_tar([("a", "f", b"a")])
    root, diff_id = unpack(tmp_path, gzip.compress(data))
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (root / "a").read_bytes() == b"a"


@pytest.mark.parametrize("entries", [
    [("../evil", "f", b"x")],
    [("a/../../evil", "f", b"x")],
    [("ok", "h", "../../etc/passwd")],
    [("ok", "h", "missing")],
    [("sub", "s", "/"), ("sub/evil", "f", b"x")],            # write through a symlink
    [("sub", "s", "../.."), ("sub/evil", "f", b"x")],
    [("d", "d", b""), ("d", "s", "/tmp"), ("d/evil", "f", b"x")],   # dir replaced by link
    [("f", "f", b"x"), ("f/evil", "f", b"x")],
])
def test_escapes_rejected(tmp_path: Path, entries: list[tuple[str, str, bytes | str]]) -> None:
    outside = tmp_path / "evil"
    with pytest.raises(InvalidParameter):
        unpack(tmp_path, make_tar(entries))
    assert not outside.exists()
    assert not (tmp_path.parent / "evil").exists()


def test_symlink_not_followed_for_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_text("original")
    # a symlink pointing outside, then a regular file of the same name: the link is
    # replaced, the outside file is untouched
    data = make_tar([("x", "s", str(target)), ("x", "f", b"new")])
    root, _ = unpack(tmp_path, data)
    assert target.read_text() == "original"
    assert (root / "x").read_bytes() == b"new" and not (root / "x").is_symlink()


def test_hardlink_to_symlink_inside(tmp_path: Path) -> None:
    data = make_tar([("l", "s", "/etc/shadow"), ("h", "h", "l")])
    root, _ = unpack(tmp_path, data)
    assert os.readlink(root / "h") == "/etc/shadow"


@pytest.mark.skipif(not IS_ROOT, reason="whiteout devices and trusted xattrs need root")
def test_whiteouts_converted(tmp_path: Path) -> None:
    data = make_tar([("data", "d", b""), ("data/.wh.a.txt", "f", b""),
                     ("data/dir", "d", b""), ("data/dir/.wh..wh..opq", "f", b""),
                     ("data/dir/c.txt", "f", b"c"), ("data/.wh..wh.plnk", "f", b"")])
    root, _ = unpack(tmp_path, data)
    st = os.lstat(root / "data/a.txt")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(root / "data/dir", OPAQUE_XATTR) == b"y"
    assert sorted(os.listdir(root / "data")) == ["a.txt", "dir"]
    assert os.listdir(root / "data/dir") == ["c.txt"]


@pytest.mark.skipif(not IS_ROOT, reason="trusted xattrs need root")
def test_overlay_xattrs_from_tar_dropped(tmp_path: Path) -> None:
    pax = {"d": {"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                 "SCHILY.xattr.user.keep": "yes"}}
    root, _ = unpack(tmp_path, make_tar([("d", "d", b"")], pax))
    names = os.listxattr(root / "d")
    assert "trusted.overlay.redirect" not in names
    assert os.getxattr(root / "d", "user.keep") == b"yes"


@pytest.mark.parametrize("data", [b"\x1f\x8bnot really gzip" * 10, b"x" * 1000])
def test_garbage_rejected(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidParameter):
        unpack(tmp_path, data)


def hash_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "layer-hash"]


@pytest.mark.parametrize("compress", [False, True])
def test_a_big_layer_is_hashed_in_a_thread_that_ends_with_it(tmp_path: Path,
                                                            compress: bool) -> None:
    """Past its first MiB a layer's diff id is hashed in a thread of its own: the
    same digest, and the thread is over when the unpack returns or fails."""
    big = os.urandom(3 << 20)
    data = make_tar([("a", "f", big), ("b", "f", b"small")])
    root, diff_id = unpack(tmp_path, gzip.compress(data, 1) if compress else data)
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (root / "a").read_bytes() == big and hash_threads() == []
    bad = make_tar([("a", "f", big), ("../escape", "f", b"x")])
    (tmp_path / "bad").mkdir()
    with pytest.raises(InvalidParameter):
        unpack(tmp_path / "bad", bad)
    assert hash_threads() == []


def unpack_within(tmp_path: Path, data: bytes, seconds: float = 20.0) -> object:
    """unpack() in a thread: its result or exception, or "hung" after `seconds`."""
    out: list[object] = ["hung"]

    def run() -> None:
        try:
            out[0] = unpack(tmp_path, data)
        except BaseException as e:        # noqa: BLE001 - the test looks at it
            out[0] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return out[0]


def test_a_failing_hash_thread_fails_the_unpack_instead_of_hanging(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash thread's update raising (a MemoryError) must end the unpack with that
    error: the reader must not block on a full queue, nor close() on its end mark."""
    class Failing:
        def __init__(self) -> None:
            self.calls = 0

        def update(self, b: bytes) -> None:
            self.calls += 1
            if self.calls > 20:           # past the first MiB: in the thread
                raise MemoryError("simulated")

        def hexdigest(self) -> str:
            return "0" * 64
    monkeypatch.setattr(hashreader, "hashlib", types.SimpleNamespace(sha256=Failing))
    data = make_tar([("a", "f", os.urandom(8 << 20))])
    got = unpack_within(tmp_path, data)
    assert isinstance(got, MemoryError), got
    assert hash_threads() == []


def test_a_hash_thread_that_cannot_start_leaves_the_hashing_inline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NoThread(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")
    monkeypatch.setattr(hashreader, "threading", types.SimpleNamespace(Thread=NoThread))
    data = make_tar([("a", "f", os.urandom(3 << 20))])
    got = unpack_within(tmp_path, data)
    assert isinstance(got, tuple) and got[1] == "sha256:" + hashlib.sha256(data).hexdigest()
    (tmp_path / "bad").mkdir()
    bad = make_tar([("a", "f", os.urandom(3 << 20)), ("../escape", "f", b"x")])
    assert isinstance(unpack_within(tmp_path / "bad", bad), InvalidParameter)  # not hidden
