"""What happens after a run ends: its exit recorded (what it held released), then
the restart policy (a timer that starts it again) or auto-remove.

The exit monitor (monitor.py) sees a run end and calls `Exits`' handler, which
takes the container's lock. A verb that must see the process gone (stop, kill
with SIGKILL, rm -f, restart; lifecycle.py) holds the lock, waits for the
monitor's process-exit event and calls `record_exit` itself; the handler then
finds the exit recorded and only applies the policy.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from ..config import Config
from ..errors import Conflict, DockerError, NotFound
from ..runtime import conmon
from ..util.ids import to_unix
from ..util.tasks import TaskOwner
from .deps import RunObserver
from .model import Container
from .monitor import ExitMonitor
from .registry import ContainerRegistry
from .restart import Backoff, wants_restart
from .runner import Runner
from .runtimes import Runtimes

log = logging.getLogger("pydockerd.containers")

AutoRemove = Callable[[str], Awaitable[None]]     # rm -f -v of an auto-remove container


class Exits:
    def __init__(self, cfg: Config, runtimes: Runtimes, registry: ContainerRegistry,
                 runner: Runner, observer: RunObserver | None, tasks: TaskOwner,
                 auto_remove: AutoRemove) -> None:
        self.cfg = cfg
        self.runtimes = runtimes
        self.registry = registry
        self.runner = runner
        self.observer = observer
        self.tasks = tasks
        self._auto_remove = auto_remove
        self.monitor = ExitMonitor(tasks, self._on_process_exit)
        self.shutting_down = False
        self._backoff: dict[str, Backoff] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._last_exit: dict[str, int] = {}      # cid -> conmon pid of the last recorded exit

    async def record_exit(self, c: Container, release: bool = True) -> None:
        """The run is over: release what it held and record the exit (lock held).
        With `release` False the exit is recorded first and the caller calls
        `release` after (daemon shutdown and start, which bound or defer it)."""
        # the log drain, the runtime's delete and the teardown are independent: at once
        steps: list[Awaitable[None]] = []
        if not self.shutting_down:  # else what is left in the spool waits for the next start
            steps.append(self.runner.logs.drained(c.id, 2.0))
        if release:
            steps += [self.runtimes.of(c).delete(c.id, force=True), self.runner.teardown(c)]
        await asyncio.gather(*steps)
        status = conmon.collect_exit(self.runner.conmon_spec(c))
        self._last_exit[c.id] = c.state.conmon_pid
        # a full disk: the exit file stays under the exec root, read at the next start
        self.registry.commit_fact(c, state=c.state.exited(
            137 if status.code is None else status.code, status.oom_killed))
        if status.oom_killed:
            self.registry.event(c, "oom")
        self.registry.event(c, "die", {
            "exitCode": str(c.state.exit_code),
            "execDuration": str(max(0, int(to_unix(c.state.finished_at)
                                           - to_unix(c.state.started_at))))})
        if self.observer is not None:
            self.observer.on_exit(c)
        self.monitor.exit_recorded(c)

    async def release(self, c: Container) -> None:
        """Release what an exited run still holds (lock held): network, mounts, then
        the runtime's container last, so that a runc state directory left behind
        (a shutdown that ran out of time) tells the next start to do this again."""
        await self.runner.teardown(c)
        await self.runtimes.of(c).delete(c.id, force=True)
        self.registry.commit_fact(c)        # its endpoints are gone

    def forget(self, cid: str) -> None:
        """The container is removed: its back-off and last exit go with it."""
        self._backoff.pop(cid, None)
        self._last_exit.pop(cid, None)

    async def _on_process_exit(self, cid: str, conmon_pid: int) -> None:
        """The exit monitor saw a run end: record it (unless a verb did), then apply
        the restart policy or auto-remove."""
        if self.shutting_down and self.cfg.live_restore:
            return
        c = self.registry.find(cid)
        if c is None:
            return
        async with self.registry.lock(cid):
            if self.registry.find(cid) is not c:
                return
            if c.state.running and c.state.conmon_pid == conmon_pid:
                await self.record_exit(c)
            if self._last_exit.get(cid) != conmon_pid or c.state.status != "exited" \
                    or self.shutting_down:
                return                  # started again, or being removed, meanwhile
            if wants_restart(c.host_config["RestartPolicy"], c.state.exit_code,
                             c.restart_count, c.manually_stopped):
                ran_for = to_unix(c.state.finished_at) - to_unix(c.state.started_at)
                delay = self._backoff.setdefault(cid, Backoff()).next(ran_for)
                self.registry.commit(c, state=c.state.restarting())
                self._timers[cid] = self.tasks.spawn(self._restart_later(c, delay),
                                                     f"restart {cid[:12]}")
                return
            auto_remove = bool(c.host_config.get("AutoRemove"))
        if auto_remove:
            try:
                await self._auto_remove(c.id)
            except (NotFound, Conflict):
                pass

    async def _restart_later(self, c: Container, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self.registry.lock(c.id):
            if self._timers.get(c.id) is asyncio.current_task():
                del self._timers[c.id]
            if self.registry.find(c.id) is not c or c.state.status != "restarting" \
                    or c.manually_stopped:
                return
            try:
                await self.runner.start(c, restart_count=c.restart_count + 1)
            except DockerError as e:
                log.warning("restarting %s failed: %s", c.id[:12], e.message)
                return
            self.monitor.watch(c)
        self.registry.event(c, "restart")

    def cancel_timer(self, cid: str) -> None:
        """A start under way (lock held): a pending restart is not made after it."""
        t = self._timers.pop(cid, None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()

    def cancel_restart(self, c: Container) -> None:
        """A verb stopped a container waiting to restart (lock held)."""
        self.cancel_timer(c.id)
        self.registry.commit_fact(c, state=c.state.restart_cancelled(), manually_stopped=True)


__all__ = ["Exits", "AutoRemove"]
