"""Lifecycle verbs whose runtime action already happened record it even when the
store cannot be written (a full disk): the record never contradicts the runtime.
And the stop of a process that does not die is bounded. No root, no daemon:
a real registry and store, a fake runtime."""
from __future__ import annotations

import asyncio
import subprocess
from types import SimpleNamespace
from typing import Any

import pytest

from pydockerd.containers import lifecycle as lifecycle_mod
from pydockerd.containers.lifecycle import Lifecycle
from pydockerd.containers.model import Container
from pydockerd.containers.registry import ContainerRegistry
from pydockerd.containers.state import State
from pydockerd.errors import NoSpace, SystemError_
from pydockerd.events import EventBus
from pydockerd.store import Store


class FakeRuntime:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def pause(self, cid: str) -> None:
        self.calls.append("pause")

    async def resume(self, cid: str) -> None:
        self.calls.append("resume")

    async def kill(self, cid: str, sig: int, all_procs: bool = False,
                   timeout: float | None = None) -> None:
        self.calls.append(f"kill {sig}")


def make(tmp_path: Any, status: str = "running",
         pid: int = 0) -> tuple[Lifecycle, Container, FakeRuntime]:
    registry = ContainerRegistry(Store(str(tmp_path / "db")), EventBus())
    c = Container(id="c" * 64, name="c", created="2024-01-01T00:00:00Z", image="busybox",
                  image_id="sha256:" + "b" * 64, config={},
                  host_config={"RestartPolicy": {"Name": "no"}})
    c.state = State(status, pid=pid, conmon_pid=0)
    registry.add(c)
    rt = FakeRuntime()
    lc = Lifecycle(SimpleNamespace(), SimpleNamespace(),           # type: ignore[arg-type]
                   SimpleNamespace(of=lambda c: rt), registry,      # type: ignore[arg-type]
                   SimpleNamespace(), None, None, SimpleNamespace())  # type: ignore[arg-type]
    return lc, c, rt


def full_disk(lc: Lifecycle, monkeypatch: Any) -> None:
    def no_space(*args: Any, **kw: Any) -> None:
        raise NoSpace("write container")
    monkeypatch.setattr(lc.registry.store, "put_json", no_space)


def test_pause_and_unpause_are_recorded_on_a_full_disk(tmp_path: Any,
                                                       monkeypatch: Any) -> None:
    lc, c, rt = make(tmp_path)
    full_disk(lc, monkeypatch)
    asyncio.run(lc.pause(c.id))
    assert rt.calls == ["pause"] and c.state.status == "paused"
    assert lc.registry.state_counts()["paused"] == 1
    asyncio.run(lc.unpause(c.id))
    assert rt.calls == ["pause", "resume"] and c.state.status == "running"
    assert lc.registry.state_counts()["paused"] == 0
    assert lc.registry.state_counts()["running"] == 1


def _stoppable(lc: Lifecycle, monkeypatch: Any, dies_on_resume: bool,
               rt: FakeRuntime) -> None:
    """The exit monitor's event for the run: set when the runtime resumes the
    container (a paused process dies of its pending signal once thawed), or never
    (a process frozen behind the daemon's back)."""
    exited = asyncio.Event()
    monkeypatch.setattr(lc.monitor, "process_exited", lambda c: exited)
    resume = rt.resume

    async def resuming(cid: str) -> None:
        await resume(cid)
        if dies_on_resume:
            exited.set()
    monkeypatch.setattr(rt, "resume", resuming)

    async def record_exit(c: Container, release: bool = True) -> None:
        lc.registry.commit_fact(c, state=c.state.exited(137))
    monkeypatch.setattr(lc.exits, "record_exit", record_exit)
    monkeypatch.setattr(lifecycle_mod, "KILL_WAIT", 0.2)


def test_stop_of_a_paused_container_thaws_it(tmp_path: Any, monkeypatch: Any) -> None:
    lc, c, rt = make(tmp_path, status="paused")
    _stoppable(lc, monkeypatch, True, rt)
    assert asyncio.run(lc.stop(c.id, timeout=5)) is True
    assert rt.calls == ["kill 15", "resume"] and c.state.status == "exited"
    assert lc.registry.state_counts()["paused"] == 0


@pytest.mark.parametrize("status", ["running", "paused"])
def test_stop_of_a_process_that_does_not_die_is_bounded(tmp_path: Any, monkeypatch: Any,
                                                        status: str) -> None:
    """SIGKILL cannot end a frozen process: the stop answers an error after
    KILL_WAIT (dockerd's message) instead of holding the container's lock for
    ever; it is killed through the runtime too (which thaws a frozen container); a
    paused one is thawed again after the SIGKILL."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        lc, c, rt = make(tmp_path, status=status, pid=proc.pid)
        _stoppable(lc, monkeypatch, False, rt)

        async def stop() -> None:
            await asyncio.wait_for(lc.stop(c.id, timeout=0), 5)
        with pytest.raises(SystemError_, match="did not receive an exit event"):
            asyncio.run(stop())
        assert not lc.registry.lock(c.id).locked()
        assert c.state.status == status                 # its exit not seen yet
        assert rt.calls == (["kill 9"] if status == "running"
                            else ["kill 15", "resume", "resume", "kill 9"])
        assert proc.wait(5) in (-9, -15)
    finally:
        proc.kill()
        proc.wait()
