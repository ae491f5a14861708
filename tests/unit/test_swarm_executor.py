"""The executor and its task runners against a fake container service (no root,
no daemon): the states a task goes through, resuming from the task store after
a restart, desired states, rejection, removal."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pydockerd.errors import NotFound
from pydockerd.swarm import taskrunner
from pydockerd.swarm import taskstate as ts
from pydockerd.swarm.assignments import Changes
from pydockerd.swarm.containerspec import NodeInfo
from pydockerd.swarm.executor import Executor
from pydockerd.swarm.files import TaskFiles
from pydockerd.swarm.proto import swarmkit_pb2 as pb
from pydockerd.swarm.taskstore import TaskStore


@dataclass
class FakeState:
    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    health: Any = None

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass
class FakeContainer:
    id: str
    name: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    state: FakeState = field(default_factory=FakeState)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})


class FakeContainers:
    def __init__(self) -> None:
        self.by_id: dict[str, FakeContainer] = {}
        self.calls: list[str] = []

    def all(self) -> list[FakeContainer]:
        return list(self.by_id.values())

    async def create(self, name, config, host_config, networking_config=None):
        c = FakeContainer(f"c{len(self.by_id) + 1}", name, config, host_config or {})
        self.by_id[c.id] = c
        self.calls.append(f"create {name}")
        return c

    async def start(self, ref):
        c = self.by_id[ref]
        health = FakeHealth("starting") if c.config.get("Healthcheck") else None
        c.state = FakeState("running", pid=42, health=health)
        self.calls.append(f"start {ref}")
        return c

    async def stop(self, ref, timeout=None, signal=None):
        self.by_id[ref].state = FakeState("exited", exit_code=143)
        self.calls.append(f"stop {ref} {timeout}")
        return True

    async def remove(self, ref, force=False, volumes=False):
        if self.by_id.pop(ref, None) is None:
            raise NotFound(ref)
        self.calls.append(f"remove {ref}")


class FakeImages:
    def __init__(self, local: set[str]) -> None:
        self.local = local

    def resolve(self, ref: str) -> object:
        if ref not in self.local:
            raise NotFound(f"No such image: {ref}")
        return object()


def _executor(tmp_path: Path, containers: FakeContainers) -> tuple[Executor, list]:
    ex = Executor(TaskStore(tmp_path / "swarm"), containers, FakeImages({"busybox"}), None,
                  TaskFiles(tmp_path / "files"), NodeInfo("node1", "h"))
    reports: list[tuple[str, int, str]] = []
    ex.reporter = lambda tid, st: reports.append((tid, st.state, st.err))
    return ex, reports


def _task(tid: str = "t1", desired: int = ts.RUNNING, image: str = "busybox") -> pb.Task:
    return pb.Task(id=tid, service_id="s", slot=1, node_id="node1",
                   service_annotations=pb.Annotations(name="web"),
                   desired_state=pb.TaskState.Name(desired),
                   status=pb.TaskStatus(state=pb.ASSIGNED),
                   spec=pb.TaskSpec(container=pb.ContainerSpec(image=image, args=["true"])))


async def _until(pred, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch):
    monkeypatch.setattr(taskrunner, "POLL", 0.01)


def _states(reports, tid="t1") -> list[int]:
    return [s for t, s, _ in reports if t == tid]


def test_a_task_runs_to_complete_forwards_only(tmp_path):
    async def main():
        cs = FakeContainers()
        ex, reports = _executor(tmp_path, cs)
        await ex.assign(Changes(complete=True, tasks={"t1": _task()}))
        await _until(lambda: ts.RUNNING in _states(reports))
        c, = cs.all()
        assert c.name == "web.1.t1" and c.state.running
        c.state = FakeState("exited", exit_code=0)
        await _until(lambda: ts.COMPLETE in _states(reports))
        assert _states(reports) == [ts.ACCEPTED, ts.PREPARING, ts.READY, ts.STARTING,
                                    ts.RUNNING, ts.COMPLETE]
        # the stored status is what was reported last
        assert TaskStore(tmp_path / "swarm").load()["t1"].status.state == ts.COMPLETE
        # a removed task takes its container with it, and leaves the store
        await ex.assign(Changes(complete=True))
        assert cs.all() == [] and TaskStore(tmp_path / "swarm").load() == {}
        await ex.close()
    asyncio.run(main())


def test_resume_after_restart_adopts_the_container(tmp_path):
    async def main():
        cs = FakeContainers()
        ex, reports = _executor(tmp_path, cs)
        await ex.assign(Changes(complete=True, tasks={"t1": _task()}))
        await _until(lambda: ts.RUNNING in _states(reports))
        await ex.close()                 # the daemon stops; the container exits meanwhile
        cs.all()[0].state = FakeState("exited", exit_code=2)
        ex2, reports2 = _executor(tmp_path, cs)
        ex2.restore()
        await _until(lambda: reports2)
        assert reports2 == [("t1", ts.FAILED, "task: non-zero exit (2)")]
        assert [c for c in cs.calls if c.startswith("create")] == ["create web.1.t1"]
        await ex2.close()
    asyncio.run(main())


def test_desired_ready_waits_then_shutdown(tmp_path):
    async def main():
        cs = FakeContainers()
        ex, reports = _executor(tmp_path, cs)
        await ex.assign(Changes(tasks={"t1": _task(desired=ts.READY)}))
        await _until(lambda: ts.READY in _states(reports))
        await asyncio.sleep(0.1)
        assert _states(reports)[-1] == ts.READY and not cs.all()[0].state.running
        await ex.assign(Changes(tasks={"t1": _task(desired=ts.SHUTDOWN)}))
        await _until(lambda: ts.SHUTDOWN in _states(reports))
        assert not any(c.startswith("start") for c in cs.calls)
        await ex.close()
    asyncio.run(main())


def test_running_task_is_stopped_on_shutdown_and_fails_when_removed(tmp_path):
    async def main():
        cs = FakeContainers()
        ex, reports = _executor(tmp_path, cs)
        t1 = _task()
        t1.spec.container.stop_grace_period.seconds = 3
        await ex.assign(Changes(tasks={"t1": t1, "t2": _task("t2")}))
        await _until(lambda: ts.RUNNING in _states(reports)
                     and ts.RUNNING in _states(reports, "t2"))
        t1.desired_state = pb.SHUTDOWN
        await ex.assign(Changes(tasks={"t1": t1}))
        await _until(lambda: ts.SHUTDOWN in _states(reports))
        assert any(c.endswith(" 3") and c.startswith("stop") for c in cs.calls)
        # t2's container removed by hand: the task fails (never restarted here)
        c2 = next(c for c in cs.all() if c.name.endswith("t2"))
        del cs.by_id[c2.id]
        await _until(lambda: ts.FAILED in _states(reports, "t2"))
        assert _states(reports, "t2")[-1] == ts.FAILED
        await ex.close()
    asyncio.run(main())


def test_missing_image_rejects(tmp_path):
    async def main():
        cs = FakeContainers()
        ex, reports = _executor(tmp_path, cs)
        await ex.assign(Changes(tasks={"t1": _task(image="nope")}))
        await _until(lambda: ts.REJECTED in _states(reports))
        assert reports[-1] == ("t1", ts.REJECTED, "No such image: nope")
        assert cs.all() == []
        await ex.close()
    asyncio.run(main())


@dataclass(frozen=True)
class FakeHealth:
    status: str


def test_healthcheck_keeps_the_task_starting_until_healthy(tmp_path):
    async def main():
        cs = FakeContainers()
        ex, reports = _executor(tmp_path, cs)
        tasks = {tid: _task(tid) for tid in ("t1", "t2")}
        for t in tasks.values():
            t.spec.container.healthcheck.test.extend(["CMD", "true"])
        await ex.assign(Changes(tasks=tasks))
        await _until(lambda: len(cs.all()) == 2 and all(c.state.running for c in cs.all()))
        c1, c2 = sorted(cs.all(), key=lambda c: c.name)
        assert c1.config["Healthcheck"]["Test"] == ["CMD", "true"]
        await asyncio.sleep(0.1)
        assert _states(reports)[-1] == ts.STARTING == _states(reports, "t2")[-1]
        c1.state = FakeState("running", pid=42, health=FakeHealth("healthy"))
        c2.state = FakeState("running", pid=42, health=FakeHealth("unhealthy"))
        await _until(lambda: ts.RUNNING in _states(reports)
                     and ts.FAILED in _states(reports, "t2"))
        assert ("t2", ts.FAILED, "unhealthy container") in reports
        await ex.close()
    asyncio.run(main())


class FakeDispatcher:
    """Assignments streams served from a list (one list per stream opened) and the
    status updates received."""
    def __init__(self, streams: list[list[pb.AssignmentsMessage]]) -> None:
        self.streams = streams
        self.opened = 0
        self.updates: list[dict[str, int]] = []

    def assignments(self, session_id: str):
        msgs = self.streams[self.opened]
        self.opened += 1

        class Stream:
            def __aiter__(self):
                return self.gen()

            async def gen(self):
                for m in msgs:
                    yield m

            def cancel(self) -> bool:
                return True
        return Stream()

    async def update_task_status(self, session_id, statuses, timeout):
        self.updates.append({tid: st.state for tid, st in statuses.items()})


def test_worker_reopens_the_stream_on_a_gap_and_reports(tmp_path):
    from pydockerd.swarm.worker import Worker
    full = pb.AssignmentsMessage(type=pb.AssignmentsMessage.COMPLETE, results_in="v1",
                                 changes=[pb.AssignmentChange(assignment=pb.Assignment(
                                     task=_task("t1", desired=ts.READY)))])
    gap = pb.AssignmentsMessage(type=pb.AssignmentsMessage.INCREMENTAL, applies_to="v7",
                                results_in="v8")

    async def main():
        cs = FakeContainers()
        ex, _ = _executor(tmp_path, cs)
        w = Worker(ex)
        d = FakeDispatcher([[full, gap], [full]])
        await w.assignments(d, "sess")          # the gap reopened the stream once
        assert d.opened == 2
        reporter = asyncio.get_running_loop().create_task(w.reporter(d, "sess"))
        await _until(lambda: any(u.get("t1") == ts.READY for u in d.updates))
        # every state went out, forwards only
        states = [u["t1"] for u in d.updates if "t1" in u]
        assert states == sorted(states) and states[-1] == ts.READY
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await ex.close()
    asyncio.run(main())
