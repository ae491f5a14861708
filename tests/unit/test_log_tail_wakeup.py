"""An idle log tailer sleeps until its spool changes (inotify), instead of polling.

With one tailer per running container, polling every 0.2 s made an idle daemon
with 1,000 containers burn half a core and slowed every start (the default
thread pool queued behind the tailers' steps).
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from pydockerd.logdrivers.drivers import LogTarget
from pydockerd.logdrivers.pipeline import LogPipeline
from pydockerd.logdrivers.spool import new_spool_name
from pydockerd.logdrivers.tag import ContainerInfo
from pydockerd.util.inotify import DirWatcher

CID = "c" * 64
TS = "2024-05-01T10:00:00.120000000+00:00"


async def _until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _spooled(tmp_path: Path) -> tuple[Path, Path, LogTarget]:
    """An empty spool in a bundle dir, and a json-file target for its container."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spool = bundle / new_spool_name(time.time_ns())
    spool.write_bytes(b"")
    log_path = tmp_path / "ctr" / f"{CID}-json.log"
    return spool, log_path, LogTarget("json-file", str(log_path), str(bundle),
                                      ContainerInfo(CID, "/t"))


def _counting(checks: list[float]) -> Callable[[], bool]:
    """An `alive` check that records when the tailer asked (conmon always lives)."""
    def alive() -> bool:
        checks.append(time.monotonic())
        return True
    return alive


def test_dir_watcher_reports_names_and_removal(tmp_path: Path) -> None:
    async def main() -> None:
        w = DirWatcher()
        seen: list[str] = []
        d = tmp_path / "bundle"
        d.mkdir()
        assert w.watch(str(d), seen.append)
        (d / "a.spool").write_bytes(b"x")
        await _until(lambda: "a.spool" in seen)
        (d / "a.spool").unlink()
        d.rmdir()
        await _until(lambda: "" in seen)          # the directory went away
        assert not w.is_watching(str(d))
        assert not w.watch(str(tmp_path / "missing"), seen.append)
        w.unwatch(str(d))                          # harmless after removal
        w.close()
    asyncio.run(main())


def test_idle_tailer_does_not_poll_and_wakes_on_write(tmp_path: Path) -> None:
    spool, log_path, target = _spooled(tmp_path)
    checks: list[float] = []
    alive = _counting(checks)

    async def main() -> None:
        pipe = LogPipeline()
        pipe.follow(CID, target, alive)
        await asyncio.sleep(1.5)
        # polling woke the tailer (and asked whether conmon lives) about 8 times by now
        assert len(checks) <= 3, f"{len(checks)} wake-ups of an idle tailer in 1.5 s"
        t0 = time.monotonic()
        with open(spool, "ab") as f:
            f.write(f"{TS} stdout F hello\n".encode())
        await _until(lambda: log_path.exists() and b"hello" in log_path.read_bytes())
        assert time.monotonic() - t0 < 1.0
        await pipe.forget(CID)
        await pipe.close()
    asyncio.run(main())
    line = json.loads(log_path.read_text().splitlines()[0])
    assert line["log"] == "hello\n" and line["stream"] == "stdout"
    assert os.path.exists(spool)


def test_idle_wake_ups_do_not_go_through_a_worker_thread(tmp_path: Path,
                                                         monkeypatch) -> None:
    """A tailer woken with nothing new in its spool (the safety-net timeout, a wake
    by the monitor) looks at the file size on the loop: with 1,000 idle tailers a
    worker-thread round trip per wake-up cost the event loop more than the starts."""
    from pydockerd.logdrivers import pipeline
    spool, log_path, target = _spooled(tmp_path)
    steps: list[int] = []
    real_step = pipeline._Tail._step

    def step(self, *args):
        steps.append(1)
        return real_step(self, *args)
    monkeypatch.setattr(pipeline._Tail, "_step", step)
    checks: list[float] = []
    alive = _counting(checks)

    async def main() -> None:
        pipe = LogPipeline()
        pipe.follow(CID, target, alive)
        await _until(lambda: len(checks) >= 1)
        for i in range(20):                       # woken, nothing written
            pipe._tails[CID].wake.set()
            await _until(lambda: len(checks) >= i + 2)
        assert steps == [], f"{len(steps)} worker-thread steps for 20 idle wake-ups"
        with open(spool, "ab") as f:
            f.write(f"{TS} stdout F hello\n".encode())
        await _until(lambda: log_path.exists() and b"hello" in log_path.read_bytes())
        assert steps
        await pipe.forget(CID)
        await pipe.close()
    asyncio.run(main())
