"""Exec instances: create, start (attached or detached), inspect, resize."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from contextlib import aclosing
from typing import Any, AsyncGenerator

from ..errors import Conflict, DockerError, InvalidParameter, NotFound, SystemError_
from ..models import ExecConfig, ExecStartConfig
from ..runtime.caps import host_capabilities
from ..runtime.exec import ExecProcess, start_exec
from ..runtime.execplan import ExecPlan
from ..runtime.nsexec import close_fork_server, plan_exec
from ..runtime.users import resolve_user
from ..util.fdstream import read_fds
from ..util.ids import new_id
from ..util.tasks import TaskOwner
from .model import Container, ExecInstance
from .registry import EXEC_KIND as KIND
from .service import ContainerService

log = logging.getLogger("pydockerd.exec")


class ExecSession:
    """A started exec: output chunks, stdin, and the exit code."""

    def __init__(self, inst: ExecInstance, proc: ExecProcess) -> None:
        self.inst = inst
        self.proc = proc
        self._loop = asyncio.get_running_loop()

    async def output(self) -> AsyncGenerator[tuple[str, bytes], None]:
        """Output until both streams end (stdout only for a TTY)."""
        fds = [("stdout", self.proc.stdout_fd)]
        if not self.proc.tty:
            fds.append(("stderr", self.proc.stderr_fd))
        async with aclosing(read_fds([(n, fd) for n, fd in fds if fd is not None])) as out:
            async for item in out:
                yield item

    async def send(self, data: bytes) -> None:
        fd = self.proc.stdin_fd
        if fd is None:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
                view = view[n:]
            except BlockingIOError:
                await asyncio.sleep(0.01)

    def close_stdin(self) -> None:
        """The client's stdin ended: a pipe is closed (the process reads EOF). A TTY is
        left as it is, as dockerd does (it closes stdin without a TTY only): the CLI
        closing its connection after a detach leaves the process running."""
        if self.proc.tty:
            return
        if self.proc.stdin_fd is not None:
            os.close(self.proc.stdin_fd)
            self.proc.stdin_fd = None

    def close(self) -> None:
        fds = {self.proc.stdin_fd, self.proc.stdout_fd, self.proc.stderr_fd} - {None}
        for fd in fds:
            try:
                os.close(fd)  # type: ignore[arg-type]
            except OSError:
                pass
        self.proc.stdin_fd = self.proc.stdout_fd = self.proc.stderr_fd = None


EARLY_TTL = 2.0        # seconds an exec's spec made at create stays good for its start


@dataclasses.dataclass
class _Early:
    """An exec's process spec and plan, made at create."""
    made: float
    init_pid: int
    console_size: tuple[int, int] | None
    task: asyncio.Task[tuple[dict[str, Any], ExecPlan | None] | None]

    async def result(self, init_pid: int, console_size: tuple[int, int] | None
                     ) -> tuple[dict[str, Any], ExecPlan | None] | None:
        """None when stale: too old, the container restarted, or the start changed
        the console size."""
        if time.monotonic() - self.made > EARLY_TTL or init_pid != self.init_pid \
                or console_size != self.console_size:
            return None
        return await self.task


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._execs: dict[str, ExecInstance] = {}
        self._procs: dict[str, ExecProcess] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._tasks = TaskOwner("exec reapers")
        self._early: dict[str, _Early] = {}

    async def close(self) -> None:
        await self._tasks.close()
        await close_fork_server()

    def restore(self) -> None:
        """Daemon start (after the containers are loaded): an exec of a container that
        is gone goes with it; one its container's record does not list yet (created
        after the container's last write) is listed again."""
        store = self.containers.registry.store
        for eid, d in store.all(KIND).items():
            c = self.containers.find(str(d.get("container_id")))
            if c is None:
                store.delete(KIND, eid)
                continue
            if eid not in c.exec_ids:
                c.exec_ids.append(eid)
            d = dict(d)
            if d.get("console_size"):
                d["console_size"] = tuple(d["console_size"])
            inst = ExecInstance(**d)
            if inst.running:           # its process cannot be ours any more
                inst.running = False
                if inst.exit_code is None:
                    inst.exit_code = 137
            self._execs[eid] = inst

    def get(self, eid: str) -> ExecInstance:
        inst = self._execs.get(eid)
        if inst is not None and self.containers.find(inst.container_id) is None:
            # its container was removed (the registry dropped the stored record)
            del self._execs[eid]
            inst = None
        if inst is None:
            raise NotFound(f"No such exec instance: {eid}")
        return inst

    def create(self, ref: str, cfg: ExecConfig) -> ExecInstance:
        """An exec instance of a running container. Its TTY and detach keys are decided
        here (the API edge checked the keys' syntax and ConsoleSize's length)."""
        c = self.containers.get(ref)
        c.state.check_exec(c.id)
        if not cfg.Cmd:
            raise InvalidParameter("No exec command specified")
        size = cfg.ConsoleSize
        inst = ExecInstance(
            id=new_id(), container_id=c.id, cmd=list(cfg.Cmd), tty=bool(cfg.Tty),
            attach_stdin=bool(cfg.AttachStdin), attach_stdout=bool(cfg.AttachStdout),
            attach_stderr=bool(cfg.AttachStderr), user=cfg.User or "",
            privileged=bool(cfg.Privileged), env=list(cfg.Env or []),
            working_dir=cfg.WorkingDir or "", detach_keys=cfg.DetachKeys or "",
            console_size=(size[0], size[1]) if size else None)
        self._save(inst)
        # not a container write per exec: the id goes to the store with the container's
        # next write, and restore() adds the ids of exec records their container lacks
        c.exec_ids.append(inst.id)
        self._execs[inst.id] = inst
        self._prepare_early(c, inst)
        self.containers.event(c, "exec_create", {"execID": inst.id})
        return inst

    def _save(self, inst: ExecInstance) -> None:
        self.containers.registry.store.put(KIND, inst.id, dataclasses.asdict(inst))

    @staticmethod
    def _prepare(bundle: str, inst: ExecInstance, user: str, group_add: list[str],
                 cid: str, init_pid: int, fast: bool) -> tuple[dict[str, Any], ExecPlan | None]:
        """In a worker thread, on values copied on the loop: the process spec, and the
        plan to start it without runc when `fast` (the container runs on runc) and
        nsexec can."""
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
        proc = ExecService._process_spec(spec, inst, user, group_add)
        return proc, plan_exec(cid, init_pid, spec, proc) if fast else None

    @staticmethod
    def _process_spec(spec: dict[str, Any], inst: ExecInstance, user: str,
                      group_add: list[str]) -> dict[str, Any]:
        proc = dict(spec["process"])
        rootfs = spec["root"]["path"]
        u = resolve_user(rootfs, user, group_add)
        proc["user"] = {"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids}
        env = list(proc.get("env") or [])
        keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
        for e in inst.env:
            k = e.split("=", 1)[0]
            if k in keys:
                env[keys[k]] = e
            else:
                env.append(e)
        if inst.tty and not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        proc["env"] = env
        proc["args"] = inst.cmd
        proc["cwd"] = inst.working_dir or proc.get("cwd") or "/"
        proc["terminal"] = inst.tty
        if inst.console_size:
            proc["consoleSize"] = {"height": inst.console_size[0],
                                   "width": inst.console_size[1]}
        else:
            proc.pop("consoleSize", None)
        if inst.privileged:
            caps = host_capabilities()
            proc["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        return proc

    def check_startable(self, eid: str) -> tuple[ExecInstance, Container]:
        inst = self.get(eid)
        if inst.started:
            raise Conflict(f"Exec {eid} has already been started")
        c = self.containers.get(inst.container_id)
        c.state.check_exec(c.id)
        return inst, c

    async def start(self, eid: str, opts: ExecStartConfig) -> ExecSession | None:
        """Run the exec: detached (None) or with its streams (an ExecSession). The TTY
        is the one exec create decided; opts.Tty only chose the client's framing (the
        API edge's business), and opts.ConsoleSize applies only along with it."""
        inst, c = self.check_startable(eid)
        detach = bool(opts.Detach)
        if opts.Tty and opts.ConsoleSize:
            inst.console_size = (opts.ConsoleSize[0], opts.ConsoleSize[1])
        inst.started = True
        run_dir = os.path.join(self.containers.paths.exec_root, "exec")
        binary = self.containers.runtime(c).binary
        early = self._early.pop(eid, None)
        try:
            prepared = await early.result(c.state.pid, inst.console_size) if early else None
            process, plan = prepared or await self._prepare_now(c, inst)
            log.debug("exec %s: started %s", eid[:12],
                      "by the daemon" if plan is not None else f"with {binary} exec")
            proc = await start_exec(binary, self.containers.runtimes.root, c.id, process,
                                    run_dir, eid, attach_stdin=not detach and inst.attach_stdin,
                                    attach_output=not detach, plan=plan)
        except DockerError as e:
            inst.exit_code = 127 if "executable file not found" in e.message \
                or "no such file or directory" in e.message else 126
            self._save(inst)
            raise SystemError_(f"OCI runtime exec failed: {e.message.split(': ', 1)[-1]}: "
                               "unknown") from e
        inst.running, inst.pid = True, proc.pid
        self._save(inst)
        self._procs[eid] = proc
        self._done[eid] = asyncio.Event()
        self.containers.event(c, "exec_start", {"execID": eid})
        self._tasks.spawn(self._reap(c, inst, proc), f"exec {eid[:12]}")
        if detach:
            return None
        return ExecSession(inst, proc)

    async def _prepare_now(self, c: Container,
                           inst: ExecInstance) -> tuple[dict[str, Any], ExecPlan | None]:
        return await asyncio.to_thread(
            self._prepare, self.containers.paths.bundle(c.id),
            dataclasses.replace(inst, cmd=list(inst.cmd), env=list(inst.env)),
            inst.user or c.config.get("User") or "",
            list(c.host_config.get("GroupAdd") or []), c.id, c.state.pid,
            os.path.basename(self.containers.runtime(c).binary) == "runc")

    def _prepare_early(self, c: Container, inst: ExecInstance) -> None:
        """At exec create: the start that follows (the CLI's, a millisecond later) finds
        the process spec and plan made while its request travelled."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return                    # a caller without a loop: the start prepares
        if self._tasks.closed:
            return                    # shutting down
        now = time.monotonic()
        for eid in [e for e, p in self._early.items() if now - p.made > EARLY_TTL]:
            del self._early[eid]

        async def prepare() -> tuple[dict[str, Any], ExecPlan | None] | None:
            try:
                return await self._prepare_now(c, inst)
            except (DockerError, OSError):
                return None           # the start prepares again, and reports it
        self._early[inst.id] = _Early(now, c.state.pid, inst.console_size,
                                      self._tasks.spawn(prepare(), f"exec {inst.id[:12]} prep"))

    async def _reap(self, c: Container, inst: ExecInstance, proc: ExecProcess) -> None:
        code = await proc.wait()
        inst.running, inst.exit_code = False, code
        self._procs.pop(inst.id, None)
        try:
            self._save(inst)
            self.containers.event(c, "exec_die", {"execID": inst.id, "exitCode": str(code)})
        finally:        # the client waiting for the exit code gets it even if the write failed
            ev = self._done.pop(inst.id, None)
            if ev:
                ev.set()

    def release(self, session: ExecSession, detached: bool) -> None:
        """The client's stream has ended (the output ended, the client detached or went
        away). As with dockerd, a process still running keeps running: its output is
        read and dropped until it ends, then the session's fds are closed. A detach is
        reported as an exec_detach event."""
        inst = session.inst
        if detached:
            c = self.containers.find(inst.container_id)
            if c is not None:
                self.containers.event(c, "exec_detach", {"execID": inst.id})
        self._tasks.spawn(self._drain(session), f"exec {inst.id[:12]} output")

    @staticmethod
    async def _drain(session: ExecSession) -> None:
        try:
            async with aclosing(session.output()) as out:
                async for _ in out:
                    pass
        finally:
            session.close()

    async def wait_done(self, eid: str) -> None:
        ev = self._done.get(eid)
        if ev is not None:
            await ev.wait()

    def resize(self, eid: str, height: int, width: int) -> None:
        inst = self.get(eid)
        proc = self._procs.get(eid)
        if proc is None:
            if not inst.started:
                inst.console_size = (height, width)
                return
            raise Conflict(f"Exec {eid} is not running")
        proc.resize(height, width)
