"""Lifecycle verbs whose runtime action already happened record it even when the
store cannot be written (a full disk): the record never contradicts the runtime.
And the stop of a process that does not die is bounded. No root, no daemon:
a real registry and store, a fake runtime."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from pydockerd.containers import lifecycle as lifecycle_mod
from pydockerd.containers.lifecycle import Lifecycle
from pydockerd.containers.model import Container
from pydockerd.containers.registry import ContainerRegistry
from pydockerd.containers.state import State
from pydockerd.errors import NoSpace
from pydockerd.events import EventBus
from pydockerd.store import Store


class FakeRuntime:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def pause(self, cid: str) -> None:
        self.calls.append("pause")

    async def resume(self, cid: str) -> None:
        self.calls.append("resume")

    async def kill(self, cid: str, sig: int, all_procs: bool = False) -> None:
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
