"""Daemon start and stop: reload containers, reattach or reconcile, stop on shutdown.

With --live-restore a container whose conmon is still alive is re-attached;
without it, dockerd's rule applies: what was left running is stopped and
recorded. Restart policies then decide what starts again.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal as _signal
from typing import TYPE_CHECKING

from ..errors import DockerError
from ..runtime import conmon
from ..runtime.pidwatch import wait_pid
from .model import Container
from .reconcile import remove_stray_runtime

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger("pydockerd.containers")

KIND = "container"


async def restore_containers(svc: "ContainerService") -> None:
    """Load containers; reattach to live ones (live-restore) or reconcile them."""
    os.makedirs(svc.paths.exit_dir, exist_ok=True)
    os.makedirs(svc.paths.runc_root, exist_ok=True)
    to_start: list[Container] = []
    for cid, d in svc.store.all(KIND).items():
        try:
            c = Container.from_dict(d)
        except (TypeError, KeyError):
            log.error("container %s has an unreadable record; skipping", cid)
            continue
        svc.adopt(c)
        if c.state.running and svc.volumes is not None:
            for vm in c.volumes:       # it still holds its volumes' mounts
                svc.volumes.register(vm.name, c.id)
    running = {c.id for c in svc.all() if c.state.running
               and c.state.conmon_pid and conmon.is_monitor_of(c.state.conmon_pid, c.id)}
    await remove_stray_runtime(svc.paths, svc.runc, running)
    await asyncio.to_thread(_remove_orphans, svc)
    for c in svc.all():
        if c.state.status == "removing":
            await svc.remove(c.id, force=True)
            continue
        alive = c.state.conmon_pid and conmon.is_monitor_of(c.state.conmon_pid, c.id)
        if c.state.running and alive:
            if svc.cfg.live_restore:
                log.info("live-restore: reattached to %s (pid %d)", c.id[:12], c.state.pid)
                svc.watch_exit(c)
                for hook in svc.on_start_hooks:
                    hook(c)
                continue
            # not live-restoring: stop what was left running, like dockerd
            try:
                os.kill(c.state.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            await wait_pid(c.state.conmon_pid)
        if c.state.running or c.state.status == "restarting":
            await svc.record_exit(c)
            svc.event(c, "die", {"exitCode": str(c.state.exit_code)})
            if c.host_config.get("AutoRemove"):
                await svc.remove(c.id, force=True, volumes=True)
                continue
        policy = c.host_config["RestartPolicy"]["Name"]
        if policy == "always" or (policy == "unless-stopped" and not c.manually_stopped) \
                or (policy == "on-failure" and c.state.exit_code != 0
                    and c.has_been_started and not c.manually_stopped and False):
            to_start.append(c)
    for c in to_start:
        if c.has_been_started and not c.state.running:
            try:
                async with svc.lock(c.id):
                    await svc.start_locked(c)
            except DockerError as e:
                log.warning("could not restart %s: %s", c.id[:12], e.message)


async def shutdown_containers(svc: "ContainerService", timeout: float) -> None:
    svc.shutting_down = True
    if not svc.cfg.live_restore:
        running = [c for c in svc.all() if c.state.running]

        async def stop_one(c: Container) -> None:
            try:
                st = c.config.get("StopTimeout")
                await svc.stop(c.id, min(int(timeout), 10 if st is None else int(st)))
                c.manually_stopped = False   # restart policy applies at next daemon start
                svc.save(c)
            except DockerError as e:
                log.warning("stopping %s: %s", c.id[:12], e.message)
        if running:
            await asyncio.gather(*(stop_one(c) for c in running))
    svc.cancel_background_tasks()


def _remove_orphans(svc: "ContainerService") -> None:
    """Files of containers the store does not know (a crash inside create or remove)."""
    known = {c.id for c in svc.all()}
    for parent in (os.path.join(svc.paths.data_root, "containers"),
                   os.path.join(svc.paths.exec_root, "containers")):
        try:
            entries = os.listdir(parent)
        except FileNotFoundError:
            continue
        for cid in entries:
            if cid not in known and len(cid) == 64:
                log.info("removing the files of unknown container %s", cid[:12])
                svc.remove_files(cid)
