"""Daemon start and stop: reload containers, reattach or reconcile, stop on shutdown.

With --live-restore a container whose conmon is still alive is re-attached;
without it, dockerd's rule applies: what was left running is stopped and
recorded. The restart policy (restart.py) then decides what starts again.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal as _signal
from typing import Callable

from ..errors import DockerError
from ..logdrivers.spool import spools
from ..logdrivers.throttle import continue_process
from ..runtime import conmon
from ..runtime.pidwatch import wait_pid
from .lifecycle import Lifecycle
from .model import Container
from .paths import Paths
from .reconcile import remove_stray_runtime
from .registry import KIND
from .restart import restart_at_daemon_start
from ..util.tasks import for_each

log = logging.getLogger("pydockerd.containers")

# containers handled at once at daemon start: each step is mostly a runc
# subprocess, a wait for a process, mounts and netlink; one at a time made a
# start with 1,000 containers left running take over a minute
RESTORE_CONCURRENCY = 16


async def restore_containers(lc: Lifecycle) -> None:
    """Load containers; reattach to live ones (live-restore) or reconcile them."""
    registry = lc.registry
    os.makedirs(lc.paths.exit_dir, exist_ok=True)
    os.makedirs(lc.paths.runc_root, exist_ok=True)
    for cid, d in registry.store.all(KIND).items():
        try:
            c = Container.from_dict(d)
        except (TypeError, KeyError):
            log.error("container %s has an unreadable record; skipping", cid)
            continue
        registry.adopt(c)
        if c.state.running and lc.volumes is not None:
            for vm in c.volumes:       # it still holds its volumes' mounts
                lc.volumes.register(vm.name, c.id, vm.destination)
    running = {c.id for c in registry.all() if c.state.running
               and c.state.conmon_pid and conmon.is_monitor_of(c.state.conmon_pid, c.id)}
    await remove_stray_runtime(lc.paths, lc.runtimes.default, running)
    known = {c.id for c in registry.all()}
    await asyncio.to_thread(_remove_orphans, lc.paths, known, lc.runner.remove_files)
    to_start: list[Container] = []

    async def restore_one(c: Container) -> None:
        if c.state.status == "removing":
            await lc.finish_removal(c)
            return
        if spools(lc.paths.bundle(c.id)):
            lc.runner.follow_logs(c, 0)     # output its conmon wrote while we were away
        alive = c.state.conmon_pid and conmon.is_monitor_of(c.state.conmon_pid, c.id)
        if c.state.running and alive:
            if lc.cfg.live_restore:
                lc.runner.follow_logs(c, c.state.conmon_pid, None, c.state.pid)
                log.info("live-restore: reattached to %s (pid %d)", c.id[:12], c.state.pid)
                lc.monitor.watch(c)
                if lc.observer is not None:
                    lc.observer.on_start(c)
                return
            # not live-restoring: stop what was left running, like dockerd (its
            # conmon continued first: a daemon that died may have left it stopped)
            continue_process(c.state.conmon_pid,
                             lambda: conmon.is_monitor_of(c.state.conmon_pid, c.id))
            try:
                os.kill(c.state.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            await wait_pid(c.state.conmon_pid)
        if c.state.running or c.state.status == "restarting":
            async with registry.lock(c.id):
                await lc.record_exit(c)
            if c.host_config.get("AutoRemove"):
                await lc.remove(c.id, force=True, volumes=True)
                return
        if restart_at_daemon_start(c.host_config["RestartPolicy"], c.state.exit_code,
                                   c.restart_count, c.manually_stopped, c.has_been_started):
            to_start.append(c)

    async def restart_one(c: Container) -> None:
        try:
            async with lc.locked(c):
                if not c.state.running:
                    await lc.start_locked(c)
        except DockerError as e:
            log.warning("could not restart %s: %s", c.id[:12], e.message)
    await for_each(registry.all(), restore_one, RESTORE_CONCURRENCY)
    # a container that joins another's network namespace or links to it needs that
    # one running first: those start after the others, one at a time, oldest first
    later = [c for c in to_start if _needs_others(c)]
    await for_each([c for c in to_start if not _needs_others(c)], restart_one,
                   RESTORE_CONCURRENCY)
    for c in sorted(later, key=lambda c: c.created):
        await restart_one(c)


def _needs_others(c: Container) -> bool:
    return str(c.host_config.get("NetworkMode") or "").startswith("container:") or bool(c.links)


async def shutdown_containers(lc: Lifecycle, timeout: float) -> None:
    """Stop what runs (unless live-restoring), then end every background task."""
    lc.shutting_down = True

    async def stop_one(c: Container) -> None:
        try:
            st = c.config.get("StopTimeout")
            await lc.stop(c.id, min(int(timeout), 10 if st is None else int(st)))
            # the restart policy applies at the next daemon start
            lc.registry.commit(c, manually_stopped=False)
        except DockerError as e:
            log.warning("stopping %s: %s", c.id[:12], e.message)
    try:
        if not lc.cfg.live_restore:
            running = [c for c in lc.registry.all() if c.state.running]
            if running:
                await asyncio.gather(*(stop_one(c) for c in running))
    finally:
        await lc.tasks.close()


def _remove_orphans(paths: Paths, known: set[str], remove_files: Callable[[str], None]) -> None:
    """Files of containers the store does not know (a crash inside create or remove)."""
    for parent in (os.path.join(paths.data_root, "containers"),
                   os.path.join(paths.exec_root, "containers")):
        try:
            entries = os.listdir(parent)
        except FileNotFoundError:
            continue
        for cid in entries:
            if cid not in known and len(cid) == 64:
                log.info("removing the files of unknown container %s", cid[:12])
                remove_files(cid)
