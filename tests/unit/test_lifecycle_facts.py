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
from pydockerd.errors import CommandFailed, NoSpace, SystemError_
from pydockerd.events import EventBus
from pydockerd.store import Store
from pydockerd.util.signals import parse_signal


class FakeRuntime:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.resume_fails = 0       # how many resumes fail ("container not paused")

    async def pause(self, cid: str) -> None:
        self.calls.append("pause")

    async def resume(self, cid: str) -> None:
        self.calls.append("resume")
        if self.resume_fails:
            self.resume_fails -= 1
            raise CommandFailed(["runc", "resume", cid], 1, "container not paused")

    async def kill(self, cid: str, sig: int, all_procs: bool = False,
                   timeout: float | None = None) -> None:
        self.calls.append(f"kill {sig}" + (" --all" if all_procs else ""))


def make(tmp_path: Any, status: str = "running", pid: int = 0,
         config: dict[str, Any] | None = None) -> tuple[Lifecycle, Container, FakeRuntime]:
    registry = ContainerRegistry(Store(str(tmp_path / "db")), EventBus())
    c = Container(id="c" * 64, name="c", created="2024-01-01T00:00:00Z", image="busybox",
                  image_id="sha256:" + "b" * 64, config=config or {},
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


def actions(lc: Lifecycle) -> list[str]:
    return [e.action for e in lc.registry.events.history(0)]


def test_stop_of_a_paused_container_thaws_it(tmp_path: Any, monkeypatch: Any) -> None:
    """Signalled, resumed, recorded running with dockerd's "unpause" event (it runs
    until it stops: dockerd's events kill, unpause, kill, die, stop)."""
    lc, c, rt = make(tmp_path, status="paused")
    _stoppable(lc, monkeypatch, False, rt)
    seen: list[str] = []
    rt_resume = rt.resume

    async def resume(cid: str) -> None:
        await rt_resume(cid)
        seen.append(c.state.status)
    monkeypatch.setattr(rt, "resume", resume)
    exited = lc.monitor.process_exited(c)
    record = lc.registry.commit_fact

    def commit_fact(c: Container, **changes: Any) -> None:
        record(c, **changes)
        if c.state.status == "running":
            seen.append("recorded running")
            exited.set()                # it then dies of its signal
    monkeypatch.setattr(lc.registry, "commit_fact", commit_fact)
    assert asyncio.run(lc.stop(c.id, timeout=5)) is True
    assert rt.calls == ["kill 15", "resume"] and c.state.status == "exited"
    assert seen == ["paused", "recorded running"]
    assert actions(lc) == ["unpause", "stop"]
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
        assert c.state.status == "running"              # its exit not seen yet
        # a paused one was thawed once (no second resume, which fails and warns)
        assert rt.calls == (["kill 9"] if status == "running"
                            else ["kill 15", "resume", "kill 9"])
        assert proc.wait(5) in (-9, -15)
    finally:
        proc.kill()
        proc.wait()


def test_a_paused_container_whose_thaw_failed_is_thawed_again(tmp_path: Any,
                                                             monkeypatch: Any) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        lc, c, rt = make(tmp_path, status="paused", pid=proc.pid)
        _stoppable(lc, monkeypatch, True, rt)
        rt.resume_fails = 1
        assert asyncio.run(lc.stop(c.id, timeout=0)) is True
        assert rt.calls == ["kill 15", "resume", "resume"] and c.state.status == "exited"
        assert actions(lc) == ["unpause", "stop"]
    finally:
        proc.kill()
        proc.wait()


def test_sigkill_of_a_paused_container_is_not_resumed_again(tmp_path: Any,
                                                            monkeypatch: Any) -> None:
    """runc kill --all thaws it after the signal: a resume then fails (it warned);
    dockerd's events: kill, die (no unpause)."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        lc, c, rt = make(tmp_path, status="paused", pid=proc.pid)
        _stoppable(lc, monkeypatch, False, rt)
        exited = lc.monitor.process_exited(c)
        kill = rt.kill

        async def killing(cid: str, sig: int, all_procs: bool = False,
                          timeout: float | None = None) -> None:
            await kill(cid, sig, all_procs, timeout)
            exited.set()
        monkeypatch.setattr(rt, "kill", killing)
        asyncio.run(lc.kill(c.id))
        assert rt.calls == ["kill 9 --all"] and c.state.status == "exited"
        assert actions(lc) == ["kill"]
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("stop_signal,sig,resumed", [
    (None, "SIGUSR1", True), (None, "SIGTERM", True),
    ("SIGUSR2", "SIGUSR1", False), ("SIGUSR2", "SIGUSR2", True), ("12", "USR2", True)])
def test_a_signal_to_a_paused_container_resumes_it_as_dockerd(
        tmp_path: Any, monkeypatch: Any, stop_signal: str | None, sig: str,
        resumed: bool) -> None:
    """moby's killWithSignal: resumed when no stop signal is configured or the signal
    is the stop signal; events kill, unpause."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        config = {} if stop_signal is None else {"StopSignal": stop_signal}
        lc, c, rt = make(tmp_path, status="paused", pid=proc.pid, config=config)
        asyncio.run(lc.kill(c.id, sig))
        assert proc.wait(5) == -parse_signal(sig)          # sent (it kills `sleep`)
        assert rt.calls == (["resume"] if resumed else [])
        assert c.state.status == ("running" if resumed else "paused")
        assert actions(lc) == (["kill", "unpause"] if resumed else ["kill"])
        assert lc.registry.state_counts()["paused"] == (0 if resumed else 1)
    finally:
        proc.kill()
        proc.wait()


def test_kill_of_a_container_whose_runtime_is_gone_still_kills(tmp_path: Any,
                                                               monkeypatch: Any) -> None:
    """Created with --runtime foo, the daemon restarted without --add-runtime foo:
    Runtimes.of raises, and os.kill's SIGKILL must still be sent (the runtime is only
    looked up for the fallback), as dockerd kills it through its shim."""
    import subprocess
    from pydockerd.errors import InvalidParameter
    proc = subprocess.Popen(["sleep", "60"])
    try:
        lc, c, _ = make(tmp_path, status="running", pid=proc.pid)

        def of(_c: Container) -> FakeRuntime:
            raise InvalidParameter("unknown or invalid runtime name: foo")
        lc.runtimes = SimpleNamespace(of=of)            # type: ignore[assignment]

        async def go() -> None:
            exited = asyncio.Event()
            monkeypatch.setattr(lc.monitor, "process_exited", lambda c: exited)
            recorded: list[str] = []

            async def record_exit(c: Container, release: bool = True) -> None:
                recorded.append(c.id)
            monkeypatch.setattr(lc.exits, "record_exit", record_exit)
            watch = asyncio.ensure_future(asyncio.to_thread(proc.wait))
            watch.add_done_callback(lambda _: exited.set())
            await lc.kill(c.id)
            await watch
            assert recorded == [c.id]
        asyncio.run(asyncio.wait_for(go(), 20))
        assert proc.wait(5) == -9
    finally:
        proc.kill()
        proc.wait()
