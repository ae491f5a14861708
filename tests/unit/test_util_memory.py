"""util/memory.py: the heap is trimmed at start-up, when a burst of work ends and on a
timer (issue 10)."""
from __future__ import annotations

import asyncio
import re

import pytest

from pydockerd.util import memory
from pydockerd.util.memory import HeapTrimmer, release_free_memory


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))   # type: ignore[union-attr]


def test_release_gives_freed_heap_pages_back() -> None:
    # many mid-sized blocks (malloc'd by glibc, not pymalloc) freed except a few at the
    # top of the heap: glibc keeps the pages below them unless trimmed
    keep = []
    blocks = []
    for i in range(40_000):
        blocks.append(bytearray(1200))
        if i % 4000 == 3999:
            keep.append(bytearray(1200))
    blocks.clear()
    before = _rss_kib()
    release_free_memory()
    assert _rss_kib() < before - 10_000, (before, _rss_kib())
    del keep


def test_the_trimmer_trims_on_its_timer_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(memory, "release_free_memory",
                        lambda collect=True: calls.append(collect))

    async def main() -> None:
        t = HeapTrimmer(interval=0.01, quiet=0.01)
        t.start()
        for _ in range(500):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
        t.stop()
        n = len(calls)
        await asyncio.sleep(0.05)
        assert len(calls) == n
    asyncio.run(main())
    assert len(calls) >= 3 and not any(calls)     # the gc is left to run by itself


def test_the_trimmer_trims_once_work_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    work = [0]
    monkeypatch.setattr(memory, "release_free_memory",
                        lambda collect=True: calls.append(asyncio.get_running_loop().time()))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t = HeapTrimmer(lambda: work[0], interval=3600, quiet=0.02)
        t.start()
        busy_until = loop.time() + 0.3
        while loop.time() < busy_until:        # a burst: the counter moves at every tick
            work[0] += 1
            await asyncio.sleep(0.005)
        assert calls == []                      # never while working
        for _ in range(200):
            if calls:
                break
            await asyncio.sleep(0.01)
        assert len(calls) == 1 and calls[0] - busy_until < 0.2
        await asyncio.sleep(0.2)                # quiet again: no trim until the interval
        t.stop()
        assert len(calls) == 1
    asyncio.run(main())


def test_memory_after_work_is_bounded_as_dockerd_bounds_it(tmp_path) -> None:
    # the events replayed by `since` are the last 256 (dockerd's eventsLimit), and
    # sqlite's page cache stays small however many pages work touched
    from pydockerd.events import EventBus
    from pydockerd.store import CACHE_KIB, Store
    bus = EventBus()
    for i in range(300):
        bus.publish("container", "start", f"c{i}")
    kept = bus.history(0)
    assert len(kept) == 256 and kept[0].actor_id == "c44" and bus.published == 300
    store = Store(str(tmp_path / "db"), reserve_bytes=1 << 20)
    assert store._db.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB <= -64


def test_the_trimmer_trims_on_its_interval_during_long_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    work = [0]
    monkeypatch.setattr(memory, "release_free_memory",
                        lambda collect=True: calls.append(collect))

    async def main() -> None:
        t = HeapTrimmer(lambda: work[0], interval=0.05, quiet=0.01)
        t.start()
        for _ in range(500):                    # the counter never stands still
            if len(calls) >= 3:
                break
            work[0] += 1
            await asyncio.sleep(0.002)
        t.stop()
    asyncio.run(main())
    assert len(calls) >= 3
