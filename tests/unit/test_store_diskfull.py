"""The store and the space reserve on a full disk (SQLITE_FULL forced with max_page_count;
the real thing, on a small tmpfs, is tests/integration/test_diskfull.py)."""
from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from pydockerd.errors import NoSpace, no_space
from pydockerd.store import Store
from pydockerd.util.reserve import MIB, SpaceReserve


def test_reserve_is_released_by_chunks_and_made_whole_again(tmp_path: Path) -> None:
    r = SpaceReserve(str(tmp_path / "reserve"), size=3 * 4096, chunk=4096, headroom=0)
    assert not r.whole and r.restore() and r.whole
    assert os.stat(r.path).st_blocks * 512 >= 3 * 4096          # allocated, not sparse
    assert r.release() and r.held() == 2 * 4096
    assert r.release() and r.release() and not os.path.exists(r.path)
    assert not r.release()
    assert r.restore() and r.held() == 3 * 4096


def test_no_space_names_the_error_once() -> None:
    err = no_space(OSError(errno.ENOSPC, "No space left on device", "/data/x"))
    assert err is not None and err.status == 500
    assert err.message == "/data/x: no space left on device"
    assert no_space(OSError(errno.EDQUOT, "Disk quota exceeded")) is not None
    assert no_space(OSError(errno.EIO, "I/O error")) is None
    assert no_space(ValueError("x")) is None
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v TEXT)")
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError) as info:
        db.execute("INSERT INTO t VALUES (?)", ("x" * 100000,))
    full = no_space(info.value)
    assert full is not None and "no space left on device" in full.message


def _full_store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "db"), reserve_bytes=2 * MIB)
    store.put("k", "a", {"v": 1})
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages}")
    return store


def test_full_store_refuses_creations_without_spending_the_reserve(tmp_path: Path) -> None:
    store = _full_store(tmp_path)
    reserve = str(tmp_path / "db.reserve")
    with pytest.raises(NoSpace, match="write k b: no space left on device"):
        store.put("k", "b", {"v": "x" * 100000})
    assert os.path.getsize(reserve) == 2 * MIB
    store.put("k", "a", {"v": 1})                 # unchanged: nothing to write
    # an update draws on the reserve chunk by chunk (here the limit is not the disk,
    # so it cannot help), then fails; the database is as it was and still readable
    with pytest.raises(NoSpace):
        store.put("k", "a", {"v": "y" * 100000})
    assert not os.path.exists(reserve)
    assert store.all("k") == {"a": {"v": 1}}
    with pytest.raises(NoSpace):
        with store.transaction():
            store.put("k", "a", {"v": "z" * 100000})
    assert store.get("k", "a") == {"v": 1}
    store.delete("k", "a")
    assert store.all("k") == {}
    store.close()


def test_store_needs_no_space_to_open_and_read(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "db"), reserve_bytes=MIB)
    store.put("k", "a", {"v": 1})
    store.close()
    assert not os.path.exists(tmp_path / "db-shm")                 # exclusive locking
    again = Store(str(tmp_path / "db"), reserve_bytes=MIB)
    assert again.get("k", "a") == {"v": 1}
    again.require_space("create x")                                # room: no error
    again.close()
