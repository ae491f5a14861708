"""The executor: the node's tasks as pydockerd containers. It takes the
assignment changes (assignments.py), keeps one TaskRunner per task, persists
every task with its status in the task store, and hands each status change to
the reporter. Containers are made and driven through the container service
(the same create checks and lifecycle verbs as the API's), never by HTTP."""
from __future__ import annotations

import logging
import os
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from ..containers.model import Container
from ..errors import DockerError, NotFound
from ..logdrivers.message import LogEntry
from ..logdrivers.reader import LogQuery
from ..util.tasks import TaskOwner, cancel_and_wait
from . import taskstate as ts
from .assignments import Changes
from .containerspec import NODE_ID_LABEL, NodeInfo
from .files import TaskFiles
from .proto import swarmkit_pb2 as pb
from .taskrunner import TaskContainers, TaskRunner
from .taskstore import TaskStore

log = logging.getLogger("pydockerd.swarm")

Pull = Callable[[str], Awaitable[None]]
Report = Callable[[str, pb.TaskStatus], None]


class TaskImages(Protocol):
    def resolve(self, ref: str) -> Any: ...


class Executor:
    def __init__(self, store: TaskStore, containers: TaskContainers, images: TaskImages,
                 pull: Pull | None, files: TaskFiles, node: NodeInfo) -> None:
        self.store = store
        self.containers = containers
        self.images = images
        self.pull = pull
        self.files = files
        self.node = node
        self.reporter: Report = lambda task_id, status: None
        self.runners: dict[str, TaskRunner] = {}
        self.tasks = TaskOwner("swarm-tasks")

    def report(self, task_id: str, status: pb.TaskStatus) -> None:
        self.reporter(task_id, status)

    def restore(self) -> None:
        """Daemon start: every stored task resumes from its stored status."""
        for t in self.store.load().values():
            self._spawn(t)

    def statuses(self) -> dict[str, pb.TaskStatus]:
        """Every task's current status (re-reported on each new session)."""
        return {tid: r.task.status for tid, r in self.runners.items()
                if r.task.status.state >= ts.ACCEPTED}

    def task_containers(self) -> list[tuple[pb.Task, Container | None]]:
        """Each task with its container (for log subscriptions)."""
        return [(r.task, r.container()) for r in self.runners.values()]

    def read_logs(self, c: Container, q: LogQuery) -> AsyncIterator[list[LogEntry]]:
        return self.containers.read_logs(c, q)

    def _spawn(self, t: pb.Task) -> None:
        r = TaskRunner(self, t)
        self.runners[t.id] = r
        r.run_task = self.tasks.spawn(r.run(), f"swarm-task-{t.id}")

    async def assign(self, ch: Changes) -> None:
        self.files.update(ch.secrets, ch.configs, ch.removed_secrets, ch.removed_configs,
                          ch.complete)
        for tid, t in ch.tasks.items():
            r = self.runners.get(tid)
            if r is not None:
                r.update(t)
            else:
                nt = pb.Task()
                nt.CopyFrom(t)
                if nt.status.state < ts.ACCEPTED:
                    nt.status.Clear()
                    nt.status.state = t.status.state
                self.store.save(nt)
                self._spawn(nt)
        gone = set(ch.removed_tasks)
        if ch.complete:
            gone |= set(self.runners) - set(ch.tasks)
        for tid in gone:
            await self._forget(tid)

    async def _forget(self, task_id: str) -> None:
        r = self.runners.pop(task_id, None)
        if r is None:
            return
        await cancel_and_wait(r.run_task)
        try:
            await r.remove()
        except DockerError as e:
            log.warning("swarm: removing the container of task %s: %s", task_id, e.message)
        self.store.remove(task_id)

    async def ensure_image(self, ref: str) -> None:
        """Pulled as dockerd does (a digest present here or
        DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 with a local image skips the pull); a
        failed pull falls back to a local image, else the task is rejected."""
        try:
            self.images.resolve(ref)
            local = True
        except NotFound:
            local = False
        if local and ("@" in ref or os.environ.get("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE")
                      == "1"):
            return
        if self.pull is None:
            if not local:
                raise NotFound(f"No such image: {ref}")
            return
        try:
            await self.pull(ref)
        except DockerError as e:
            if not local:
                raise
            log.info("swarm: pulling %s failed (%s); using the local image", ref, e.message)

    async def close(self) -> None:
        """Daemon stop: the runners stop; containers are left to the daemon's own
        shutdown (or kept running with live-restore) and resumed at the next start."""
        await self.tasks.close()
        self.runners.clear()

    async def stop_all(self) -> None:
        """The node was removed from the swarm: no runner goes on, every task
        container stops (they stay, for `docker ps -a`, until the node leaves)."""
        await self.close()
        for c in self.containers.all():
            if c.labels.get(NODE_ID_LABEL) == self.node.id and c.state.running:
                try:
                    await self.containers.stop(c.id)
                except DockerError as e:
                    log.warning("swarm: stopping %s: %s", c.name, e.message)

    async def leave(self) -> None:
        """The node leaves the swarm: every task container goes (dockerd removes
        every container labelled with its node ID), with the secrets and configs."""
        await self.close()
        for c in self.containers.all():
            if c.labels.get(NODE_ID_LABEL) == self.node.id:
                try:
                    await self.containers.remove(c.id, force=True)
                except DockerError as e:
                    log.warning("swarm leave: removing %s: %s", c.name, e.message)
        await self.files.close()
