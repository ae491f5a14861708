"""One task on this node, from Accepted to a terminal state, as SwarmKit's
agent drives it (exec/controller.go Do): prepare (image, secrets and configs,
the container) → Ready → wait for desired Running → start → (healthy) →
Running → exit. Each state is reported once and only forwards (taskstate.py);
an error before Starting rejects the task, from Starting on it fails it. The
runner never restarts a container: restarts are the managers' decision (they
send a new task). A desired state of Shutdown or later stops the container."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from ..containers.model import Container
from ..errors import DockerError, NotFound
from ..logdrivers.message import LogEntry
from ..logdrivers.reader import LogQuery
from ..models import ContainerCreateRequest, from_doc, to_doc
from ..containers.validate import validate_create
from . import taskstate as ts
from .containerspec import TASK_ID_LABEL, container_create, stop_grace
from .proto import swarmkit_pb2 as pb

if TYPE_CHECKING:
    from .containerspec import NodeInfo
    from .files import TaskFiles
    from .taskstore import TaskStore

log = logging.getLogger("pydockerd.swarm")

POLL = 0.5           # how often a waiting runner looks at its container


class TaskContainers(Protocol):
    """What the executor needs of the container service."""
    def all(self) -> list[Container]: ...
    async def create(self, name: str | None, config: dict[str, Any],
                     host_config: dict[str, Any] | None,
                     networking_config: dict[str, Any] | None = None) -> Container: ...
    async def start(self, ref: str) -> Container: ...
    async def stop(self, ref: str, timeout: int | None = None,
                   signal: str | None = None) -> bool: ...
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...
    def read_logs(self, c: Container, q: LogQuery) -> AsyncIterator[list[LogEntry]]: ...


class RunnerHost(Protocol):
    """What a runner uses of the executor."""
    store: TaskStore
    containers: TaskContainers
    files: TaskFiles
    node: NodeInfo

    def report(self, task_id: str, status: pb.TaskStatus) -> None: ...
    async def ensure_image(self, ref: str) -> None: ...


class _Shutdown(Exception):
    """The manager wants the task down."""


class TaskRunner:
    def __init__(self, ex: RunnerHost, task: pb.Task) -> None:
        self.ex = ex
        self.task = task
        self.changed = asyncio.Event()
        self.run_task: asyncio.Task[None] | None = None

    @property
    def state(self) -> int:
        return int(self.task.status.state)

    def update(self, assigned: pb.Task) -> None:
        """A new version of the task from the manager: our status is kept."""
        t = pb.Task()
        t.CopyFrom(assigned)
        t.status.CopyFrom(self.task.status)
        self.task = t
        self.ex.store.save(t)
        self.changed.set()

    def set_status(self, state: int, err: str = "", c: Container | None = None) -> None:
        if not ts.may_move(self.state, state):
            return
        st = pb.TaskStatus(state=pb.TaskState.Name(state), message=ts.MESSAGES.get(state, ""), err=err)
        st.timestamp.CopyFrom(Timestamp(seconds=int(time.time())))
        if c is not None:
            st.container.CopyFrom(pb.ContainerStatus(
                container_id=c.id, pid=c.state.pid, exit_code=c.state.exit_code))
        if state >= ts.STARTING:
            # the host-mode published ports (`docker service ps` PORTS)
            st.port_status.ports.extend(p for p in self.task.endpoint.ports
                                        if p.publish_mode == pb.PortConfig.HOST)
        self.task.status.CopyFrom(st)
        self.ex.store.save(self.task)
        self.ex.report(self.task.id, st)

    def container(self) -> Container | None:
        for c in self.ex.containers.all():
            if c.labels.get(TASK_ID_LABEL) == self.task.id:
                return c
        return None

    # ---- the run ------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except _Shutdown:
            await self._shutdown()
        except asyncio.CancelledError:
            raise
        except DockerError as e:
            self.set_status(ts.error_state(self.state), e.message, self.container())
        except Exception as e:
            log.exception("swarm task %s", self.task.id)
            self.set_status(ts.error_state(self.state), str(e), self.container())
        if ts.terminal(self.state):
            await self._wait_removed()

    def _check_desired(self) -> None:
        if self.task.desired_state >= ts.SHUTDOWN:
            raise _Shutdown()

    async def _pause(self) -> None:
        try:
            await asyncio.wait_for(self.changed.wait(), POLL)
        except asyncio.TimeoutError:
            pass
        self.changed.clear()

    async def _run(self) -> None:
        if ts.terminal(self.state):
            return
        self._check_desired()
        self.set_status(ts.ACCEPTED)
        c = self.container()
        if self.state < ts.READY:
            self.set_status(ts.PREPARING)
            if c is None:
                c = await self._prepare()
            self.set_status(ts.READY)
        while self.task.desired_state < ts.RUNNING:
            self._check_desired()
            await self._pause()
        self._check_desired()
        if c is None:
            raise DockerError("task: container removed")
        if self.state < ts.STARTING:
            self.set_status(ts.STARTING, c=c)
            if not c.state.running:
                c = await self.ex.containers.start(c.id)
        if self.state < ts.RUNNING:
            await self._healthy()
            self.set_status(ts.RUNNING, c=self.container())
        await self._exited()

    async def _prepare(self) -> Container:
        params = container_create(self.task, self.ex.node)
        spec = self.task.spec.container
        await self.ex.ensure_image(spec.image)
        params.host_config["Mounts"] += await self.ex.files.mounts_for(self.task.id, spec)
        # the same model and checks as a client's create body
        req = from_doc(dict(params.config, HostConfig=params.host_config),
                       ContainerCreateRequest)
        validate_create(req, req.HostConfig)
        doc = to_doc(req) or {}
        hc = doc.pop("HostConfig", None)
        return await self.ex.containers.create(params.name, doc, hc)

    async def _healthy(self) -> None:
        """With a healthcheck the task stays Starting until the container is healthy;
        unhealthy fails it."""
        while True:
            self._check_desired()
            c = self.container()
            if c is None:
                raise DockerError("task: container removed")
            if not c.state.running:
                return
            health = c.state.health
            if health is None or health.status == "healthy":
                return
            if health.status == "unhealthy":
                raise DockerError("unhealthy container")
            await self._pause()

    async def _exited(self) -> None:
        while True:
            self._check_desired()
            c = self.container()
            if c is None:
                raise DockerError("task: container removed")
            if not c.state.running and c.state.status != "restarting":
                state, err = ts.exit_state(c.state.exit_code)
                self.set_status(state, err, c)
                return
            await self._pause()

    async def _shutdown(self) -> None:
        """Desired Shutdown (or later): the container stops; the task is Shutdown
        unless it already ended."""
        c = self.container()
        if c is not None and c.state.running:
            try:
                await self.ex.containers.stop(c.id, stop_grace(self.task.spec.container))
            except NotFound:
                pass
            c = self.container()
        if not ts.terminal(self.state):
            self.set_status(ts.SHUTDOWN, c=c)

    async def _wait_removed(self) -> None:
        """A finished task keeps its container until the manager removes the task;
        a later desired Shutdown still stops a container that runs on (restart)."""
        while True:
            if self.task.desired_state >= ts.SHUTDOWN:
                c = self.container()
                if c is not None and c.state.running:
                    await self._shutdown()
            self.changed.clear()
            await self.changed.wait()

    async def remove(self) -> None:
        """The task is gone from the node's assignments: its container goes."""
        c = self.container()
        if c is not None:
            try:
                await self.ex.containers.remove(c.id, force=True)
            except NotFound:
                pass
        self.ex.files.release(self.task.id)
