"""SIGKILL of a container's process (containers/killing.py): os.kill first, the
runtime's kill (which thaws a frozen cgroup) when the exit is not seen soon. No
root, no daemon: a real process, a fake runtime whose kill ends the wait."""
from __future__ import annotations

import asyncio
import subprocess
from typing import Any, Iterator

import pytest

from pydockerd.containers import killing
from pydockerd.containers.model import Container
from pydockerd.containers.state import State
from pydockerd.errors import Conflict, InvalidParameter


class Runtime:
    """`kill` is what ends a frozen process: it sets `exited` (unless `fails`)."""

    def __init__(self, exited: asyncio.Event, fails: bool = False) -> None:
        self.exited, self.fails = exited, fails
        self.kills: list[tuple[int, float | None]] = []

    async def kill(self, cid: str, sig: int, all_procs: bool = False,
                   timeout: float | None = None) -> None:
        self.kills.append((sig, timeout))
        if self.fails:
            raise Conflict(f"Container {cid} is not running")
        self.exited.set()


@pytest.fixture
def proc() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def container(pid: int) -> Container:
    c = Container(id="c" * 64, name="c", created="2024-01-01T00:00:00Z", image="busybox",
                  image_id="sha256:" + "b" * 64, config={}, host_config={})
    c.state = State("running", pid=pid, conmon_pid=0)
    return c


def run(proc: subprocess.Popen[bytes], frozen: bool, bound: float,
        fails: bool = False) -> tuple[bool, Runtime]:
    async def go() -> tuple[bool, Runtime]:
        exited = asyncio.Event()
        rt = Runtime(exited, fails)

        async def wait() -> None:
            if not frozen:          # the exit monitor sees the SIGKILLed process end
                await asyncio.to_thread(proc.wait)
                exited.set()
            await exited.wait()
        seen = await killing.kill_and_wait(lambda: rt, container(proc.pid),  # type: ignore[arg-type,return-value]
                                           wait(), bound)
        return seen, rt
    return asyncio.run(go())


def test_a_container_whose_runtime_is_gone_is_still_killed(
        proc: subprocess.Popen[bytes]) -> None:
    """Created with --runtime foo, the daemon restarted without --add-runtime foo: the
    runtime cannot be looked up, os.kill still ends the process (looked up lazily)."""
    def no_runtime() -> Runtime:
        raise InvalidParameter("unknown or invalid runtime name: foo")

    async def go() -> bool:
        return await killing.kill_and_wait(
            no_runtime, container(proc.pid),  # type: ignore[arg-type]
            asyncio.to_thread(proc.wait), 5)
    assert asyncio.run(go()) and proc.wait(5) == -9


def test_a_process_that_dies_costs_no_runtime_kill(proc: subprocess.Popen[bytes],
                                                   monkeypatch: Any) -> None:
    monkeypatch.setattr(killing, "RUNTIME_KILL_AFTER", 3)   # room on a loaded machine
    seen, rt = run(proc, frozen=False, bound=5)
    assert seen and rt.kills == [] and proc.wait(5) == -9


def test_one_not_seen_dying_is_killed_through_the_runtime(
        proc: subprocess.Popen[bytes], monkeypatch: Any) -> None:
    """Frozen on cgroup v1, the SIGKILL pends: the runtime's kill (runc thaws a frozen
    container for SIGKILL, as dockerd relies on) ends it, within the bound."""
    monkeypatch.setattr(killing, "RUNTIME_KILL_AFTER", 0.05)
    seen, rt = run(proc, frozen=True, bound=5)
    assert seen and [sig for sig, _ in rt.kills] == [9]
    timeout = rt.kills[0][1]
    assert timeout is not None and 4 < timeout <= 5       # bounded by what is left


def test_the_wait_is_bounded(proc: subprocess.Popen[bytes], monkeypatch: Any) -> None:
    monkeypatch.setattr(killing, "RUNTIME_KILL_AFTER", 0.05)
    seen, rt = run(proc, frozen=True, bound=0.3, fails=True)
    assert not seen and len(rt.kills) == 1


def test_an_unknown_pid_is_never_signalled(monkeypatch: Any) -> None:
    sent: list[int] = []
    monkeypatch.setattr(killing.os, "kill", lambda pid, sig: sent.append(pid))
    killing.signal_pid(0, 9)            # os.kill(0, ...) would signal our own group
    killing.signal_pid(-1, 9)
    killing.signal_pid(1234, 9)
    assert sent == [1234]
