"""This node's swarm membership: outside any swarm (what every daemon starts
as, at no cost: nothing of gRPC is loaded), joining, or a worker with a
running agent. pydockerd is never a manager: swarm init and every cluster
object route (nodes, services, tasks, secrets, configs) answer as dockerd does
on a worker or on a node outside a swarm."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ..errors import DockerError, InvalidParameter, NotImplementedErr, Unavailable
from ..util.tasks import TaskOwner, cancel_and_wait
from .addrs import split_addr
from .identity import IdentityStore
from .state import ACTIVE, ERROR, INACTIVE, PENDING, SwarmInfo

if TYPE_CHECKING:
    from .agent import Agent, JoinRequest
    from .executor import Executor, Pull, TaskImages
    from .taskrunner import TaskContainers
    from .identity import Identity
    from .worker import Worker

log = logging.getLogger("pydockerd.swarm")

NOT_IN_SWARM = "This node is not part of a swarm"
NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or '
                 '"docker swarm join" to connect this node to swarm and try again.')
WORKER_NOT_MANAGER = ("This node is not a swarm manager. Worker nodes can't be used to "
                      "view or modify cluster state. Please run this command on a manager "
                      "node or promote the current node to a manager.")
ALREADY_IN_SWARM = ('This node is already part of a swarm. Use "docker swarm leave" to '
                    'leave this swarm and join another one.')
JOIN_TIMEOUT = ("Timeout was reached before node joined. The attempt to join the swarm "
                "will continue in the background. Use the \"docker info\" command to see "
                "the current swarm status of your node.")
JOIN_WAIT = 20.0      # dockerd's swarmConnectTimeout
AVAILABILITIES = ("active", "pause", "drain")


@dataclass
class TaskDeps:
    """What the executor runs tasks with: the container service, the images, a
    registry pull, and the exec root (secrets and configs live on a tmpfs there)."""
    containers: TaskContainers
    images: TaskImages
    pull: Pull | None
    exec_root: str


class SwarmNode:
    def __init__(self, data_root: str, labels: list[str], join_wait: float = JOIN_WAIT,
                 deps: TaskDeps | None = None) -> None:
        self.store = IdentityStore(data_root)
        self.labels = labels
        self.join_wait = join_wait
        self.deps = deps
        self.executor: Executor | None = None
        self.tasks = TaskOwner("swarm")
        self.state = INACTIVE
        self.error = ""
        self.agent: Agent | None = None
        self._joining: asyncio.Task[DockerError | None] | None = None
        self._running: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """At daemon start: a node that was in a swarm resumes with its identity."""
        if not self.store.exists():
            return
        from .agent import Agent
        try:
            ident = self.store.load()
        except (OSError, ValueError, KeyError) as e:
            self.state, self.error = ERROR, f"cannot read the swarm state: {e}"
            return
        self.agent = Agent(ident, self.labels, self.store.save, self._worker(ident))
        if self.executor is not None:
            self.executor.restore()
        self.state = PENDING
        self._running = self.tasks.spawn(self._run(self.agent), "swarm-agent")

    def _worker(self, ident: Identity) -> Worker | None:
        """The executor and reporter of the node's tasks (none without container
        services: unit tests of membership)."""
        if self.deps is None:
            return None
        import platform
        import socket
        from .containerspec import NodeInfo
        from .executor import Executor
        from .files import TaskFiles
        from .taskstore import TaskStore
        from .worker import Worker
        d = self.deps
        self.executor = Executor(
            TaskStore(self.store.dir), d.containers, d.images, d.pull,
            TaskFiles(Path(d.exec_root) / "swarm-files"),
            NodeInfo(ident.node_id, socket.gethostname(), "linux", platform.machine()))
        return Worker(self.executor)

    async def close(self) -> None:
        await self.tasks.close()
        if self.executor is not None:
            await self.executor.close()

    async def _run(self, agent: Agent) -> None:
        run = asyncio.get_running_loop().create_task(agent.run())
        try:
            try:
                await asyncio.wait({run, agent.ready}, return_when=asyncio.FIRST_COMPLETED)
                if agent.ready.done():
                    agent.ready.result()
                    self.state, self.error = ACTIVE, ""
            except Unavailable as e:
                self.state, self.error = ERROR, e.message
            await run
            await self._stop_tasks()
        finally:
            await cancel_and_wait(run)

    # ---------------------------------------------------------------- API

    def info(self) -> SwarmInfo:
        agent = self.agent
        if self.state == INACTIVE or agent is None:
            return SwarmInfo(self.state, error=self.error)
        state, error = (ERROR, agent.error) if agent.error \
            else (self.state, self.error or agent.warning)
        return SwarmInfo(state, agent.ident.node_id, agent.ident.advertise_addr, error,
                         list(agent.session.managers))

    def require_manager(self) -> NoReturn:
        """Cluster objects (nodes, services, tasks, secrets, configs) live on managers."""
        if self.state == INACTIVE:
            raise Unavailable(NOT_A_MANAGER)
        raise Unavailable(WORKER_NOT_MANAGER)

    def init(self) -> NoReturn:
        raise NotImplementedErr("pydockerd cannot be a swarm manager: initialise the swarm "
                                "on a Moby dockerd")

    async def join(self, remote_addrs: list[str], token: str, availability: str,
                   advertise_addr: str, listen_addr: str, data_path_addr: str) -> None:
        if self.state != INACTIVE:
            raise Unavailable(ALREADY_IN_SWARM)
        if not remote_addrs:
            raise InvalidParameter("at least 1 RemoteAddr is required to join")
        availability = availability.lower() or "active"
        if availability not in AVAILABILITIES:
            raise InvalidParameter(f"invalid Availability: {availability!r}")
        from .jointoken import parse_token
        split_addr(remote_addrs[0])
        parse_token(token)
        from .agent import JoinRequest      # gRPC is loaded from here on
        req = JoinRequest(remote_addrs[0], token, availability, advertise_addr,
                          listen_addr, data_path_addr)
        self.state, self.error = PENDING, ""
        self._joining = self.tasks.spawn(self._join(req), "swarm-join")
        done, _ = await asyncio.wait({self._joining}, timeout=self.join_wait)
        if not done:
            raise Unavailable(JOIN_TIMEOUT)
        refused = self._joining.result()
        if refused is not None:
            raise refused

    async def _join(self, req: JoinRequest) -> DockerError | None:
        """Join; a refusal is returned (the route reports it), not logged as a crash."""
        from .agent import Agent, request_identity
        try:
            ident = await request_identity(req)
            agent = Agent(ident, self.labels, self.store.save, self._worker(ident))
            self.agent = agent
            run = asyncio.get_running_loop().create_task(agent.run())
            await asyncio.wait({run, agent.ready}, return_when=asyncio.FIRST_COMPLETED)
            if not agent.ready.done():
                await cancel_and_wait(run)
                raise Unavailable("the swarm session ended before the node was ready")
            try:
                agent.ready.result()
            except BaseException:
                await cancel_and_wait(run)
                raise
            self.store.save(ident)
            self.state = ACTIVE
        except DockerError as e:
            self._forget()
            return e
        except BaseException:
            self._forget()
            raise
        self._running = self.tasks.spawn(self._keep(run), "swarm-agent")
        return None

    async def _keep(self, run: asyncio.Task[None]) -> None:
        try:
            await run
            await self._stop_tasks()
        finally:
            await cancel_and_wait(run)

    async def _stop_tasks(self) -> None:
        """The agent ended for good (the managers removed the node): its task
        containers stop, until the user leaves (which removes them)."""
        if self.executor is not None:
            await self.executor.stop_all()

    def _forget(self) -> None:
        self.agent = None
        self.executor = None
        self.store.remove()
        self.state, self.error = INACTIVE, ""

    async def leave(self, force: bool) -> None:
        if self.state == INACTIVE:
            raise Unavailable(NOT_IN_SWARM)
        await cancel_and_wait(self._joining, self._running)
        self._joining = self._running = None
        if self.executor is not None:
            await self.executor.leave()
        self._forget()
