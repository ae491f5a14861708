"""Daemon shutdown within dockerd's bound (containers/shutdown.py) and the daemon
start that settles containers in the background (containers/restore.py)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, AsyncIterator

import pytest

from pydockerd.containers import killing, restore
from pydockerd.containers.model import Container
from pydockerd.containers.paths import Paths
from pydockerd.containers.registry import ContainerRegistry
from pydockerd.containers.shutdown import (RELEASE_CONCURRENCY, shutdown_bound,
                                           shutdown_containers, stop_all)
from pydockerd.containers.state import State
from pydockerd.errors import CommandFailed
from pydockerd.events import EventBus
from pydockerd.store import Store
from pydockerd.util.tasks import TaskOwner


def container(i: int, stop_timeout: int | None = None, status: str = "running") -> Container:
    config: dict[str, Any] = {} if stop_timeout is None else {"StopTimeout": stop_timeout}
    c = Container(id=f"{i:064x}", name=f"c{i}", created="2024-01-01T00:00:00Z",
                  image="busybox", image_id="sha256:" + "b" * 64, config=config,
                  host_config={"RestartPolicy": {"Name": "no"}})
    c.state = State(status, pid=0, conmon_pid=0)
    return c


class FakeLifecycle:
    """What shutdown.py and restore.py use of the Lifecycle and its Exits (exits.py;
    this fake plays both: `lc.exits` is itself), with timed steps."""

    def __init__(self, registry: ContainerRegistry, paths: Paths | None = None,
                 stop_s: float = 0.0, release_s: float = 0.0) -> None:
        self.registry = registry
        self.paths = paths
        self.cfg = SimpleNamespace(live_restore=False)
        self.tasks = TaskOwner("test")
        self.restoring: set[str] = set()
        self.restore_task: asyncio.Task[None] | None = None
        self.shutting_down = False
        self.stop_s, self.release_s = stop_s, release_s
        self.stopped: list[str] = []
        self.released: list[str] = []
        self.releasing = self.peak = 0
        self.runtimes = SimpleNamespace(default=None)
        self.runner = SimpleNamespace(set_aside=lambda cid: [], purge_later=lambda paths: None)
        self.monitor = SimpleNamespace(watch=lambda c: None)
        self.observer = None
        self.volumes = None
        self.exits = self

    @asynccontextmanager
    async def locked(self, c: Container) -> AsyncIterator[None]:
        async with self.registry.lock(c.id):
            yield

    async def stop_for_shutdown(self, c: Container) -> bool:
        if not c.state.running:
            return False
        await asyncio.sleep(self.stop_s)
        self.registry.commit_fact(c, state=c.state.exited(137))
        self.stopped.append(c.id)
        return True

    async def record_exit(self, c: Container, release: bool = True) -> None:
        self.registry.commit_fact(c, state=c.state.exited(137))
        if release:
            await self.release(c)

    async def release(self, c: Container) -> None:
        self.releasing += 1
        self.peak = max(self.peak, self.releasing)
        try:
            await asyncio.sleep(self.release_s)
            self.released.append(c.id)
        finally:
            self.releasing -= 1

    async def start_locked(self, c: Container) -> None:
        raise AssertionError("nothing is restarted here")


def registry_with(tmp_path: Any, containers: list[Container]) -> ContainerRegistry:
    r = ContainerRegistry(Store(str(tmp_path / "db")), EventBus())
    for c in containers:
        r.add(c)
    return r


# ---- the bound ----------------------------------------------------------------------

def test_bound_is_dockerds_longest_stop_timeout_plus_grace() -> None:
    assert shutdown_bound(15, []) == 15
    assert shutdown_bound(15, [container(1)]) == 15          # default 10 + 5
    assert shutdown_bound(2, [container(1)]) == 15
    assert shutdown_bound(2, [container(1, 1)]) == 6
    assert shutdown_bound(60, [container(1, 1), container(2, 30)]) == 60
    assert shutdown_bound(15, [container(1, 30)]) == 35
    assert shutdown_bound(15, [container(1, -1)]) is None     # wait for ever, as dockerd
    assert shutdown_bound(-1, [container(1)]) is None


# ---- stopping ----------------------------------------------------------------------

def test_stops_in_parallel_and_records_every_exit_before_the_bound(tmp_path: Any) -> None:
    cs = [container(i) for i in range(40)]
    lc = FakeLifecycle(registry_with(tmp_path, cs), stop_s=0.2, release_s=60)
    t0 = time.monotonic()
    asyncio.run(stop_all(lc, cs, 1.0))   # type: ignore[arg-type]
    took = time.monotonic() - t0
    assert took < 2.0, f"stop_all took {took:.1f} s with a 1 s bound"
    assert len(lc.stopped) == 40 and lc.released == []
    assert all(c.state.status == "exited" for c in cs)
    # recorded in the store too, not just in memory
    assert {d["state"]["status"] for d in lc.registry.store.all("container").values()} \
        == {"exited"}
    assert not any(lc.registry.lock(c.id).locked() for c in cs)


def test_releases_a_few_at_a_time(tmp_path: Any) -> None:
    cs = [container(i) for i in range(30)]
    lc = FakeLifecycle(registry_with(tmp_path, cs), release_s=0.01)
    asyncio.run(stop_all(lc, cs, None))     # type: ignore[arg-type]
    assert sorted(lc.released) == sorted(c.id for c in cs)
    assert lc.peak == RELEASE_CONCURRENCY


def test_shutdown_skips_live_restore_and_containers_not_settled(tmp_path: Any) -> None:
    cs = [container(i) for i in range(3)]
    lc = FakeLifecycle(registry_with(tmp_path, cs))
    lc.restoring.add(cs[0].id)
    asyncio.run(shutdown_containers(lc, 15))    # type: ignore[arg-type]
    assert sorted(lc.stopped) == sorted(c.id for c in cs[1:])
    assert lc.tasks.closed and lc.shutting_down

    (tmp_path / "lr").mkdir()
    cs = [container(i) for i in range(3)]
    lc = FakeLifecycle(registry_with(tmp_path / "lr", cs))
    lc.cfg.live_restore = True
    asyncio.run(shutdown_containers(lc, 15))    # type: ignore[arg-type]
    assert lc.stopped == [] and all(c.state.running for c in cs)


# ---- the daemon start --------------------------------------------------------------

def _paths(tmp_path: Any) -> Paths:
    p = Paths(str(tmp_path / "data"), str(tmp_path / "exec"))
    os.makedirs(p.runc_root, exist_ok=True)
    return p


def test_load_locks_what_needs_work(tmp_path: Any) -> None:
    paths = _paths(tmp_path)
    left_running, clean, unreleased = container(1), container(2, status="exited"), \
        container(3, status="exited")
    os.makedirs(os.path.join(paths.runc_root, unreleased.id))   # a release left undone
    store_dir = tmp_path / "s"
    store_dir.mkdir()
    registry_with(store_dir, [left_running, clean, unreleased]).store.close()
    lc = FakeLifecycle(ContainerRegistry(Store(str(store_dir / "db")), EventBus()), paths)

    async def load() -> list[str]:
        return [c.id for c in (await restore.load_containers(lc)).pending]  # type: ignore[arg-type]
    pending = asyncio.run(load())
    assert sorted(pending) == [left_running.id, unreleased.id]
    assert lc.restoring == set(pending)
    assert all(lc.registry.lock(cid).locked() for cid in pending)
    assert not lc.registry.lock(clean.id).locked()


def test_settle_goes_on_in_the_background_after_the_budget(tmp_path: Any,
                                                           monkeypatch: Any) -> None:
    monkeypatch.setattr(restore, "SETTLE_WAIT_ALL", 3)
    paths = _paths(tmp_path)
    cs = [container(i) for i in range(5)] + [container(9, status="exited")]
    os.makedirs(os.path.join(paths.runc_root, cs[-1].id))
    lc = FakeLifecycle(registry_with(tmp_path, cs), paths, release_s=0.3)

    async def run() -> None:
        pending = await restore.load_containers(lc)     # type: ignore[arg-type]
        t0 = time.monotonic()
        await restore.settle(lc, pending, 0.05)         # type: ignore[arg-type]
        assert time.monotonic() - t0 < 0.25
        # not settled yet: locked (a verb waits), listed as restoring
        assert lc.restoring == {c.id for c in cs}
        assert all(lc.registry.lock(c.id).locked() for c in cs)
        assert lc.restore_task is not None
        await lc.restore_task
        assert lc.restoring == set()
        assert not any(lc.registry.lock(c.id).locked() for c in cs)
        assert all(c.state.status == "exited" for c in lc.registry.all())
        assert sorted(lc.released) == sorted(c.id for c in cs)
    asyncio.run(run())


def test_a_few_are_settled_before_the_api_answers(tmp_path: Any) -> None:
    paths = _paths(tmp_path)
    cs = [container(i) for i in range(5)]
    lc = FakeLifecycle(registry_with(tmp_path, cs), paths, release_s=0.3)

    async def run() -> None:
        pending = await restore.load_containers(lc)     # type: ignore[arg-type]
        assert lc.registry.running_count() == 5         # loaded as recorded
        await restore.settle(lc, pending, 0.05)         # type: ignore[arg-type]
        assert lc.restoring == set()
        assert all(c.state.status == "exited" for c in lc.registry.all())
        assert lc.registry.running_count() == 0         # their exits recorded
    asyncio.run(run())


def test_shutdown_during_settle_releases_the_locks(tmp_path: Any) -> None:
    paths = _paths(tmp_path)
    cs = [container(i) for i in range(80)]
    lc = FakeLifecycle(registry_with(tmp_path, cs), paths, release_s=60)

    async def run() -> None:
        pending = await restore.load_containers(lc)     # type: ignore[arg-type]
        await restore.settle(lc, pending, 0.05)         # type: ignore[arg-type]
        await asyncio.wait_for(shutdown_containers(lc, 15), 5)  # type: ignore[arg-type]
    asyncio.run(run())
    assert lc.restoring == set()
    assert not any(lc.registry.lock(c.id).locked() for c in cs)
    assert lc.stopped == []     # left to the next start, as the records say


@pytest.mark.parametrize("n", [0, 1])
def test_stop_all_with_nothing_or_one(tmp_path: Any, n: int) -> None:
    cs = [container(i) for i in range(n)]
    lc = FakeLifecycle(registry_with(tmp_path, cs))
    asyncio.run(stop_all(lc, cs, 0.5))          # type: ignore[arg-type]
    assert len(lc.released) == n


def test_leftover_files_go_after_the_exits_and_in_the_background(tmp_path: Any) -> None:
    """A crash's leftovers (`.rm-<id>`) are handed to the background purge once every
    exit is recorded: the start does not delete them (nor wait for it) first."""
    paths = _paths(tmp_path)
    cs = [container(i) for i in range(3)]
    leftover = os.path.join(paths.data_root, "containers", ".rm-" + "cd" * 32)
    os.makedirs(os.path.join(leftover, "upper", "etc"))
    lc = FakeLifecycle(registry_with(tmp_path, cs), paths)
    order: list[str] = []
    record_exit = lc.record_exit

    async def recording(c: Container, release: bool = True) -> None:
        order.append("exit")
        await record_exit(c, release)
    lc.record_exit = recording              # type: ignore[method-assign]
    lc.runner = SimpleNamespace(set_aside=lambda cid: [],
                                purge_later=lambda paths: order.append(f"purge {paths}"))

    async def run() -> None:
        pending = await restore.load_containers(lc)     # type: ignore[arg-type]
        await restore.settle(lc, pending, 5)            # type: ignore[arg-type]
    asyncio.run(run())
    assert order == ["exit"] * 3 + [f"purge {[leftover]}"]
    assert os.path.isdir(os.path.join(leftover, "upper", "etc"))


def test_a_container_created_while_settling_is_not_taken_for_a_leftover(
        tmp_path: Any, monkeypatch: Any) -> None:
    """With many containers to settle the API answers meanwhile: a container it creates
    then (its directory made before its record) is no crash's leftover. What no record
    owns is decided, and set aside, at load, before the API answers; after the leftover
    runtimes are removed (a conmon's pid is read from the bundle set aside)."""
    monkeypatch.setattr(restore, "SETTLE_WAIT_ALL", 1)
    paths = _paths(tmp_path)
    cs = [container(i) for i in range(3)]
    orphan, new = "ab" * 32, container(99, status="created")
    os.makedirs(os.path.join(paths.data_root, "containers", orphan))
    lc = FakeLifecycle(registry_with(tmp_path, cs), paths)
    order: list[str] = []

    async def stray(paths: Paths, runc: Any, running: set[str]) -> None:
        order.append("stray runtimes")
        assert running == {c.id for c in cs}
    monkeypatch.setattr(restore, "remove_stray_runtime", stray)
    record_exit = lc.record_exit
    created: list[str] = []

    async def recording(c: Container, release: bool = True) -> None:
        if not created:                         # a `docker create` answered meanwhile
            created.append(new.id)
            os.makedirs(os.path.join(paths.data_root, "containers", new.id))
            await asyncio.sleep(0.01)           # its rw layer, made in a thread
            lc.registry.add(new)
        await record_exit(c, release)
    lc.record_exit = recording              # type: ignore[method-assign]
    lc.runner = SimpleNamespace(set_aside=lambda cid: order.append(f"aside {cid}") or [],
                                purge_later=lambda paths: order.append("purge"))

    async def run() -> None:
        loaded = await restore.load_containers(lc)      # type: ignore[arg-type]
        at_load.extend(order)
        await restore.settle(lc, loaded, 0.001)         # type: ignore[arg-type]
        assert lc.restore_task is not None
        await lc.restore_task
    at_load: list[str] = []
    asyncio.run(run())
    assert created and f"aside {new.id}" not in order
    assert at_load == ["stray runtimes", f"aside {orphan}"]
    assert order == at_load + ["purge"]
    assert lc.registry.find(new.id) is new



class _Runtime:
    """A runtime whose containers with conmon pid 1001 (paused) or 1003 (frozen behind
    the daemon's back, recorded running) are frozen until `resume` or its SIGKILL (runc
    kill thaws a frozen container): their conmon, waited for with `wait_pid`, ends
    only then."""

    def __init__(self, fails: bool) -> None:
        self.thawed = {1001: asyncio.Event(), 1003: asyncio.Event()}   # by conmon pid
        self.fails = fails
        self.kills: list[str] = []

    def _thaw(self, cid: str) -> None:
        pid = {container(1).id: 1001, container(3).id: 1003}.get(cid)
        if pid is not None:
            self.thawed[pid].set()

    async def resume(self, cid: str) -> None:
        if self.fails:
            raise CommandFailed(["runc", "resume", cid], 1, "container not paused")
        self._thaw(cid)

    async def kill(self, cid: str, sig: int, all_procs: bool = False,
                   timeout: float | None = None) -> None:
        self.kills.append(cid)
        self._thaw(cid)

    async def wait_pid(self, pid: int) -> None:
        if pid in self.thawed:
            await self.thawed[pid].wait()


@pytest.mark.parametrize("fails", [False, True])
def test_a_paused_container_left_by_a_crash_is_thawed_and_recorded_exited(
        tmp_path: Any, monkeypatch: Any, fails: bool) -> None:
    """Without live-restore a container left running is killed at daemon start; one
    left paused (frozen: SIGKILL cannot end it) is resumed first, one frozen but
    recorded running (or whose resume failed) is killed through the runtime, which
    thaws it; the start takes no KILL_WAIT."""
    paths = _paths(tmp_path)
    proc = subprocess.Popen(["sleep", "60"])       # the containers' process
    try:
        paused, running, frozen = container(1, status="paused"), container(2), container(3)
        paused.state = State("paused", pid=proc.pid, conmon_pid=1001)
        running.state = State("running", pid=proc.pid, conmon_pid=1002)
        frozen.state = State("running", pid=proc.pid, conmon_pid=1003)
        lc = FakeLifecycle(registry_with(tmp_path, [paused, running, frozen]), paths)
        rt = _Runtime(fails)
        lc.runtimes = SimpleNamespace(default=None, of=lambda c: rt)
        monkeypatch.setattr(restore.conmon, "is_monitor_of", lambda pid, cid: True)
        monkeypatch.setattr(restore, "continue_process", lambda pid, alive: None)
        monkeypatch.setattr(restore, "wait_pid", rt.wait_pid)
        monkeypatch.setattr(restore, "KILL_WAIT", 30, raising=False)
        monkeypatch.setattr(killing, "RUNTIME_KILL_AFTER", 0.05)
        assert lc.registry.state_counts()["paused"] == 1

        async def run() -> None:
            loaded = await restore.load_containers(lc)      # type: ignore[arg-type]
            await asyncio.wait_for(restore.settle(lc, loaded, 5), 10)  # type: ignore[arg-type]
        began = time.monotonic()
        asyncio.run(run())
        assert time.monotonic() - began < 5
        states = [lc.registry.get(c.id).state for c in (paused, running, frozen)]
        assert [st.status for st in states] == ["exited"] * 3
        counts = lc.registry.state_counts()
        assert counts["paused"] == counts["running"] == 0 and counts["exited"] == 3
        assert all(e.is_set() for e in rt.thawed.values())
        # the runtime's kill only for what did not end at once
        assert frozen.id in rt.kills and running.id not in rt.kills
        assert (paused.id in rt.kills) == fails
        assert proc.wait(5) == -9                   # SIGKILLed
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("runtime_says", ["paused", "running"])
def test_live_restore_keeps_a_paused_container_paused_unless_thawed_meanwhile(
        tmp_path: Any, monkeypatch: Any, runtime_says: str) -> None:
    paths = _paths(tmp_path)
    c = container(1, status="paused")
    c.state = State("paused", pid=1000, conmon_pid=1001)
    lc = FakeLifecycle(registry_with(tmp_path, [c]), paths)
    lc.cfg.live_restore = True

    async def state(cid: str) -> dict[str, Any]:
        return {"status": runtime_says}
    lc.runtimes = SimpleNamespace(default=None, of=lambda c: SimpleNamespace(state=state))
    lc.runner = SimpleNamespace(set_aside=lambda cid: [], purge_later=lambda paths: None,
                                follow_logs=lambda *args: None)
    monkeypatch.setattr(restore.conmon, "is_monitor_of", lambda pid, cid: True)

    async def run() -> list[Container]:
        return (await restore.load_containers(lc)).pending  # type: ignore[arg-type]
    assert asyncio.run(run()) == []                         # re-attached
    assert lc.registry.get(c.id).state.status == runtime_says
    assert lc.registry.state_counts()[runtime_says] == 1
