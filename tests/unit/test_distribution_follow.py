"""distribution/follow.py: the unpacker's view of a blob that is still downloading."""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from pydockerd.distribution.follow import Abandoned, Follower, Restarted, in_own_thread


def reader_in_thread(f: Follower, path: Path, n: int) -> tuple[threading.Thread, list[object]]:
    got: list[object] = []

    def run() -> None:
        r = f.open(str(path))
        try:
            got.append(r.read(n))
        except Exception as e:          # noqa: BLE001 - the test looks at it
            got.append(e)
        finally:
            r.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


def test_a_read_waits_for_its_bytes_and_eof_waits_for_done(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    f = Follower()
    t, got = reader_in_thread(f, path, 6)
    path.write_bytes(b"abc")
    f.grew(3)
    t.join(0.2)
    assert t.is_alive() and not got        # 3 of 6 bytes: still waiting
    path.write_bytes(b"abcdefgh")
    f.grew(8)
    t.join(5)
    assert got == [b"abcdef"]
    r = f.open(str(path))
    r.seek(6)
    t2, got2 = reader_in_thread(f, path, 0)
    t2.join(5)
    done: list[bytes] = []
    t3 = threading.Thread(target=lambda: done.append(r.read(100)), daemon=True)
    t3.start()
    t3.join(0.2)
    assert t3.is_alive()                   # at the end, but not verified yet: no EOF
    f.done()
    t3.join(5)
    assert done == [b"gh"] and r.read(10) == b"" and r.tell() == 8
    r.seek(-2, os.SEEK_CUR)
    assert r.read(-1) == b"gh"
    r.close()


@pytest.mark.parametrize("how", ["restarted", "abandon"])
def test_a_restart_or_abandon_stops_a_waiting_reader(tmp_path: Path, how: str) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 10)
    f = Follower()
    f.grew(10)
    t, got = reader_in_thread(f, path, 20)
    t.join(0.2)
    assert t.is_alive()
    getattr(f, how)()
    t.join(5)
    kind = Restarted if how == "restarted" else Abandoned
    assert len(got) == 1 and isinstance(got[0], kind)
    f.done()                               # too late: readers stay stopped
    t, got = reader_in_thread(f, path, 1)
    t.join(5)
    assert isinstance(got[0], kind)


def test_abandon_stops_the_reader_even_after_done(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 10)
    f = Follower()
    f.grew(10)
    f.done()
    t, got = reader_in_thread(f, path, 20)
    t.join(5)
    assert got == [b"x" * 10]
    f.abandon()                            # the pull gave up: stop a layer mid-unpack
    t, got = reader_in_thread(f, path, 20)
    t.join(5)
    assert isinstance(got[0], Abandoned)


def test_in_own_thread_delivers_result_and_exception() -> None:
    async def main() -> None:
        names: list[str] = []

        def ok() -> int:
            names.append(threading.current_thread().name)
            return 42

        def bad() -> int:
            raise ValueError("no")
        assert await in_own_thread(ok, "pull-test") == 42
        assert names == ["pull-test"]
        with pytest.raises(ValueError):
            await in_own_thread(bad, "pull-test")
    asyncio.run(main())
