"""Lifecycle verbs: start, stop, kill, restart, pause, unpause, remove, wait.

Every verb runs under the container's lock and moves the state machine
(state.py) through the registry. A verb that must see the process gone (stop,
kill with SIGKILL, rm -f, restart) signals it, waits for the exit monitor's
process-exit event (which needs no lock) and records the exit itself
(exits.py); the monitor's handler then finds it recorded and only applies the
policy. What happens after an exit (recording it, releasing the run, the
restart policy, auto-remove) is exits.py's.
"""
from __future__ import annotations

import asyncio
import logging
import signal as _signal
import time
from contextlib import asynccontextmanager
from functools import partial
from typing import AsyncIterator

from ..config import Config
from ..errors import Conflict, DockerError, InvalidParameter, NoSpace, NotFound, SystemError_
from ..instruments import ActionTimer
from ..util.signals import parse_signal
from ..util.tasks import TaskOwner
from .deps import RunObserver, Volumes
from .exits import Exits
from .killing import kill_and_wait, signal_pid, thaw
from .model import Container
from .mounts import remove_anonymous
from .paths import Paths
from .registry import ContainerRegistry
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
        self.exits = Exits(cfg, runtimes, registry, runner, observer, self.tasks,
                           partial(self.remove, force=True, volumes=True))
        self.monitor = self.exits.monitor
        # containers the daemon start still reconciles (their lock is held meanwhile)
        # or restarts: the network reconcile treats them as live
        self.restoring: set[str] = set()
        self.restore_task: asyncio.Task[None] | None = None

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
        self.exits.cancel_timer(c.id)
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
            self.exits.cancel_restart(c)
            return True
        self.registry.commit_fact(c, manually_stopped=True)
        if not c.state.running:
            return False
        sig = parse_signal(signal or c.config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            st = c.config.get("StopTimeout")
            timeout = 10 if st is None else int(st)
        exited = self.monitor.process_exited(c)
        paused = c.state.status == "paused"
        if paused:      # the signal is pending until it is thawed, as with dockerd
            await self.runtimes.of(c).kill(c.id, sig, all_procs=False)
            await self._thaw(c)
        else:
            signal_pid(c.state.pid, sig)
        try:
            await asyncio.wait_for(exited.wait(), None if timeout < 0 else timeout)
        except asyncio.TimeoutError:
            log.info("container %s did not stop within %ss; killing", c.id[:12], timeout)
            if c.state.status == "paused":
                await self._thaw(c)         # a thaw that failed before
            if not await kill_and_wait(lambda: self.runtimes.of(c), c, exited.wait(), KILL_WAIT):
                # answered (the lock released) rather than waiting for ever; its exit
                # is recorded when it comes
                log.error("container %s did not die within %ss of SIGKILL", c.id[:12],
                          KILL_WAIT)
                raise SystemError_("tried to kill container, but did not receive an "
                                   "exit event") from None
        await self.exits.record_exit(c, release)
        self.registry.event(c, "stop")
        return True

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        """SIGKILL (the default) answers once the container is recorded exited."""
        c = self.registry.get(ref)
        sig = parse_signal(signal, _signal.SIGKILL)
        async with self.locked(c):
            if c.state.status == "restarting":
                # nothing runs: cancelling the pending restart is the kill (as dockerd)
                self.exits.cancel_restart(c)
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
        paused = c.state.status == "paused"
        if sig != _signal.SIGKILL:
            # dockerd (killWithSignal) resumes a paused container for a signal when
            # none is configured to stop it or it is that one: then it is delivered
            thaws = paused and _stops(c, sig)
            signal_pid(c.state.pid, sig)
            if thaws:
                await self._thaw(c)
            return
        exited = self.monitor.process_exited(c)
        if paused:      # runc kill --all thaws it after the signal, as dockerd's kill
            await self.runtimes.of(c).kill(c.id, sig, all_procs=True)
        # one frozen behind our back is killed through the runtime (killing.py)
        if not await kill_and_wait(lambda: self.runtimes.of(c), c, exited.wait(), KILL_WAIT):
            log.warning("container %s did not die within %ss of SIGKILL", c.id[:12], KILL_WAIT)
            return
        await self.exits.record_exit(c)

    async def _thaw(self, c: Container) -> None:
        """Resume a paused container being signalled; once resumed it is recorded
        running (even on a full disk) with dockerd's "unpause" event."""
        if await thaw(self.runtimes.of(c), c):
            self.registry.commit_fact(c, state=c.state.unpaused(c.id))
            self.registry.event(c, "unpause")

    async def restart(self, ref: str, timeout: int | None = None,
                      signal: str | None = None) -> None:
        c = self.registry.get(ref)
        async with self.locked(c):
            if c.state.running:
                await self._stop_locked(c, timeout, signal)
            if c.state.status == "restarting":
                self.exits.cancel_restart(c)
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
            # it is frozen: the record follows even on a full disk (dockerd logs a
            # failed checkpoint and answers the pause)
            self.registry.commit_fact(c, state=c.state.paused(c.id))
        self.registry.event(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.registry.get(ref)
        async with self.locked(c):
            c.state.check_unpause(c.id)
            await self.runtimes.of(c).resume(c.id)
            self.registry.commit_fact(c, state=c.state.unpaused(c.id))
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
                self.exits.cancel_restart(c)
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
        self.exits.forget(c.id)
        if volumes and self.volumes is not None:
            await remove_anonymous(self.volumes, c)
        self.registry.event(c, "destroy")
        self.monitor.removed(c)


def _stops(c: Container, sig: int) -> bool:
    """Whether `sig` is the container's stop signal (any signal when none is set)."""
    stop = c.config.get("StopSignal")
    return not stop or parse_signal(stop) == sig


def start_error(msg: str) -> DockerError:
    full = f"failed to create task for container: {msg}: unknown" \
        if msg.startswith("OCI runtime") else msg
    code = exit_code_for_error(msg)
    if code in (126, 127):
        return InvalidParameter(full)
    return SystemError_(full)
