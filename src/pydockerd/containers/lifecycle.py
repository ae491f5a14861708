"""Lifecycle verbs: start, stop, kill, restart, pause, unpause, remove, wait, and
what happens after an exit (restart policy, auto-remove).

Every verb runs under the container's lock and moves the state machine
(state.py) through the registry. A verb that must see the process gone (stop,
kill with SIGKILL, rm -f, restart) signals it, waits for the exit monitor's
process-exit event (which needs no lock) and records the exit itself; the
monitor's handler then finds it recorded and only applies the policy.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal as _signal
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable

from ..config import Config
from ..errors import Conflict, DockerError, InvalidParameter, NoSpace, NotFound, SystemError_
from ..instruments import ActionTimer
from ..runtime import conmon
from ..util.ids import to_unix
from ..util.signals import parse_signal
from ..util.tasks import TaskOwner
from .deps import RunObserver, Volumes
from .model import Container
from .monitor import ExitMonitor
from .mounts import remove_anonymous
from .paths import Paths
from .registry import ContainerRegistry
from .restart import Backoff, wants_restart
from .runner import Runner, exit_code_for_error, purge
from .runtimes import Runtimes

log = logging.getLogger("pydockerd.containers")

KILL_WAIT = 10.0          # how long kill / rm -f wait for a SIGKILLed process


class Lifecycle:
    def __init__(self, cfg: Config, paths: Paths, runtimes: Runtimes,
                 registry: ContainerRegistry, runner: Runner, volumes: Volumes | None,
                 observer: RunObserver | None, actions: ActionTimer) -> None:
        self.cfg = cfg
        self.paths = paths
        self.runtimes = runtimes
        self.registry = registry
        self.runner = runner
        self.volumes = volumes
        self.observer = observer
        self.actions = actions      # "delete"
        self.tasks = TaskOwner("containers")
        self.monitor = ExitMonitor(self.tasks, self._on_process_exit)
        self.shutting_down = False
        # containers the daemon start still reconciles (their lock is held meanwhile)
        # or restarts: the network reconcile treats them as live
        self.restoring: set[str] = set()
        self.restore_task: asyncio.Task[None] | None = None
        self._backoff: dict[str, Backoff] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._last_exit: dict[str, int] = {}      # cid -> conmon pid of the last recorded exit

    @asynccontextmanager
    async def locked(self, c: Container) -> AsyncIterator[None]:
        """The container's lock; NotFound when it was removed meanwhile."""
        async with self.registry.lock(c.id):
            if self.registry.find(c.id) is not c:
                raise NotFound(f"No such container: {c.id}")
            yield

    # ---- start ------------------------------------------------------------------

    async def start(self, ref: str) -> Container:
        c = self.registry.get(ref)
        async with self.locked(c):
            c.state.check_start()
            try:
                await self.start_locked(c, manually_stopped=False)
            except DockerError:
                failed = True
            else:
                failed = False
        if failed and c.host_config.get("AutoRemove"):
            # dockerd removes an auto-remove container whose start failed
            err = c.state.error
            await self.remove(c.id, force=True, volumes=True)
            raise start_error(err)
        if failed:
            raise start_error(c.state.error)
        return c

    async def start_locked(self, c: Container, **changes: object) -> None:
        self._cancel_timer(c.id)
        await self.runner.start(c, **changes)
        self.monitor.watch(c)

    # ---- stop / kill / restart / pause ------------------------------------------

    async def stop(self, ref: str, timeout: int | None = None,
                   signal: str | None = None) -> bool:
        """Returns False when the container was not running (HTTP 304)."""
        c = self.registry.get(ref)
        async with self.locked(c):
            stopped = await self._stop_locked(c, timeout, signal)
        return stopped

    async def stop_for_shutdown(self, c: Container) -> bool:
        """Daemon shutdown (lock held): stop with the container's own signal and stop
        timeout, record the exit at once and leave the release of what the run held
        (`release`) to the caller, which bounds it. False when it was not running."""
        if not c.state.running:
            return False
        await self._stop_locked(c, None, None, release=False)
        # the restart policy applies at the next daemon start
        self.registry.commit_fact(c, manually_stopped=False)
        return True

    async def _stop_locked(self, c: Container, timeout: int | None,
                           signal: str | None, release: bool = True) -> bool:
        if c.state.status == "restarting":
            self._cancel_restart(c)
            return True
        self.registry.commit_fact(c, manually_stopped=True)
        if not c.state.running:
            return False
        sig = parse_signal(signal or c.config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            st = c.config.get("StopTimeout")
            timeout = 10 if st is None else int(st)
        exited = self.monitor.process_exited(c)
        if c.state.status == "paused":
            await self.runtimes.of(c).kill(c.id, sig, all_procs=False)
            await self.runtimes.of(c).resume(c.id)
        else:
            _signal_pid(c.state.pid, sig)
        try:
            await asyncio.wait_for(exited.wait(), None if timeout < 0 else timeout)
        except asyncio.TimeoutError:
            log.info("container %s did not stop within %ss; killing", c.id[:12], timeout)
            _signal_pid(c.state.pid, _signal.SIGKILL)
            await exited.wait()
        await self.record_exit(c, release)
        self.registry.event(c, "stop")
        return True

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        """SIGKILL (the default) answers once the container is recorded exited."""
        c = self.registry.get(ref)
        sig = parse_signal(signal, _signal.SIGKILL)
        async with self.locked(c):
            if c.state.status == "restarting":
                # nothing runs: cancelling the pending restart is the kill (as dockerd)
                self._cancel_restart(c)
                return
            try:
                c.state.check_kill(c.id)
            except Conflict as e:
                raise Conflict(f"Cannot kill container: {ref}: {e.message}") from None
            await self._kill_locked(c, sig)

    async def _kill_locked(self, c: Container, sig: int) -> None:
        if sig == _signal.SIGKILL:
            self.registry.commit_fact(c, manually_stopped=True)
        self.registry.event(c, "kill", {"signal": str(sig)})
        exited = self.monitor.process_exited(c)
        if c.state.status == "paused" and sig == _signal.SIGKILL:
            await self.runtimes.of(c).kill(c.id, sig, all_procs=True)
            try:
                await self.runtimes.of(c).resume(c.id)
            except DockerError:
                pass
        else:
            _signal_pid(c.state.pid, sig)
        if sig != _signal.SIGKILL:
            return
        try:
            await asyncio.wait_for(exited.wait(), KILL_WAIT)
        except asyncio.TimeoutError:
            log.warning("container %s did not die within %ss of SIGKILL", c.id[:12], KILL_WAIT)
            return
        await self.record_exit(c)

    async def restart(self, ref: str, timeout: int | None = None,
                      signal: str | None = None) -> None:
        c = self.registry.get(ref)
        async with self.locked(c):
            if c.state.running:
                await self._stop_locked(c, timeout, signal)
            if c.state.status == "restarting":
                self._cancel_restart(c)
            c.state.check_start()
            try:
                await self.start_locked(c, manually_stopped=False)
            except DockerError as e:
                raise start_error(e.message) from None
        self.registry.event(c, "restart")

    async def pause(self, ref: str) -> None:
        c = self.registry.get(ref)
        async with self.locked(c):
            c.state.check_pause(c.id)
            await self.runtimes.of(c).pause(c.id)
            self.registry.commit(c, state=c.state.paused(c.id))
        self.registry.event(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.registry.get(ref)
        async with self.locked(c):
            c.state.check_unpause(c.id)
            await self.runtimes.of(c).resume(c.id)
            self.registry.commit(c, state=c.state.unpaused(c.id))
        self.registry.event(c, "unpause")

    # ---- wait / remove ------------------------------------------------------------

    async def wait(self, ref: str, condition: str = "not-running") -> Container:
        c = self.registry.get(ref)
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        if condition == "removed":
            await self.monitor.next_removal(c.id)
            return c
        if condition in ("not-running", "") and not c.state.running \
                and c.state.status != "restarting":
            return c
        return await self.monitor.next_exit(c.id)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.registry.get(ref)
        began = time.monotonic()
        try:
            await self._remove(c, force, volumes)
        finally:
            # as dockerd: timed whether the removal succeeded or not
            self.actions.observe("delete", time.monotonic() - began)

    async def _remove(self, c: Container, force: bool, volumes: bool) -> None:
        async with self.registry.lock(c.id):
            if self.registry.find(c.id) is not c:
                return                  # removed meanwhile (rm -f racing --rm)
            c.state.check_remove(c.name, force)
            if c.state.status == "restarting":
                self._cancel_restart(c)
            elif c.state.running:
                await self._kill_locked(c, _signal.SIGKILL)
                if c.state.running:
                    raise SystemError_(f"could not kill running container {c.id}, "
                                       "cannot remove")
            await self._remove_locked(c)
        await self._removed(c, volumes)

    async def finish_removal_locked(self, c: Container) -> None:
        """Daemon start: a removal that a crash interrupted goes to its end (lock held)."""
        await self._remove_locked(c)
        await self._removed(c, volumes=False)

    async def _remove_locked(self, c: Container) -> None:
        if c.state.status != "removing":
            # a crash from here on: the next start finishes the removal
            self.registry.commit_fact(c, state=c.state.removing(c.name))
        await self.runner.logs.forget(c.id)
        # the files are set aside and deleted after the answer (a full disk: first,
        # which makes room for the record's removal)
        aside = await asyncio.to_thread(self.runner.set_aside, c.id)
        try:
            try:
                self.registry.remove(c)
            except NoSpace:
                await asyncio.to_thread(purge, aside)
                aside = []
                self.registry.remove(c)
        except NoSpace:
            # not removed: the record stays, dead, and `rm` can be retried
            self.registry.commit_fact(c, state=c.state.dead("removal not recorded: no space "
                                                            "left on device"))
            raise
        except Exception as e:
            self.registry.commit_fact(c, state=c.state.dead(str(e)))
            raise SystemError_(f"unable to remove container {c.id}: {e}") from e
        finally:
            self.runner.purge_later(aside)

    async def _removed(self, c: Container, volumes: bool) -> None:
        self._backoff.pop(c.id, None)
        self._last_exit.pop(c.id, None)
        if volumes and self.volumes is not None:
            await remove_anonymous(self.volumes, c)
        self.registry.event(c, "destroy")
        self.monitor.removed(c)

    # ---- exits ------------------------------------------------------------------

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
                await self.remove(c.id, force=True, volumes=True)
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

    def _cancel_timer(self, cid: str) -> None:
        t = self._timers.pop(cid, None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()

    def _cancel_restart(self, c: Container) -> None:
        """A verb stopped a container waiting to restart (lock held)."""
        self._cancel_timer(c.id)
        self.registry.commit_fact(c, state=c.state.restart_cancelled(), manually_stopped=True)


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def start_error(msg: str) -> DockerError:
    full = f"failed to create task for container: {msg}: unknown" \
        if msg.startswith("OCI runtime") else msg
    code = exit_code_for_error(msg)
    if code in (126, 127):
        return InvalidParameter(full)
    return SystemError_(full)
