"""Daemon start: reload containers, reattach or reconcile them, restart by policy.

With --live-restore a container whose conmon is still alive is re-attached;
without it, dockerd's rule applies: what was left running is stopped and
recorded. The restart policy (restart.py) then decides what starts again.

In two steps: `load_containers` (before the API answers: records loaded, live
ones re-attached, the ones needing work locked) and `settle` (that work, then
the restarts), which the daemon waits for only a short while: a start after a
crash with 1,000 containers left running answers /_ping within ~1 s, and a verb
on a container not settled yet waits for its lock.
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Callable

from ..errors import DockerError
from ..logdrivers.spool import spools
from ..logdrivers.throttle import continue_process
from ..runtime import conmon
from ..runtime.pidwatch import wait_pid
from .killing import kill_and_wait, thaw
from .lifecycle import KILL_WAIT, Lifecycle
from .model import Container
from .paths import Paths
from .reconcile import kill_leftover_conmon, remove_stray_runtime
from .registry import KIND
from .restart import restart_at_daemon_start
from .runner import ASIDE
from ..util.tasks import for_each

log = logging.getLogger("pydockerd.containers")

# containers handled at once at daemon start: each step is mostly a runc
# subprocess, a wait for a process, mounts and netlink; one at a time made a
# start with 1,000 containers left running take over a minute
RESTORE_CONCURRENCY = 16
# exits recorded at once at daemon start: each is a kill, a wait for a pidfd, a read
# of conmon's exit file and a store write
RECORD_CONCURRENCY = 128
# up to this many containers to settle (or restart by policy), the API answers after
SETTLE_WAIT_ALL = 64


@dataclass
class Loaded:
    """What `load_containers` leaves to `settle`."""
    pending: list[Container]    # locked, their work still to do
    aside: list[str]            # files a crash left, set aside, to purge


async def load_containers(lc: Lifecycle) -> Loaded:
    """Daemon start, before the API answers: load the records, re-attach to live
    containers (live-restore), lock every container that still needs work (a run
    left recorded running, a runtime left behind, a removal under way), remove the
    runtimes of containers not recorded running and set aside the files no record
    owns. Nothing is created meanwhile: what is not known now is a crash's leftover
    (later, a `create` under way has its directory before its record). `settle`
    does the pending work and the purge, and may finish after the API answers."""
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
    pending: list[Container] = []
    for c in registry.all():
        alive = bool(c.state.conmon_pid) and conmon.is_monitor_of(c.state.conmon_pid, c.id)
        if c.state.running and alive and lc.cfg.live_restore:
            if c.state.status == "paused":
                await _paused_still(lc, c)
            lc.runner.follow_logs(c, c.state.conmon_pid, None, c.state.pid)
            log.info("live-restore: reattached to %s (pid %d)", c.id[:12], c.state.pid)
            lc.monitor.watch(c)
            if lc.observer is not None:
                lc.observer.on_start(c)
        elif c.state.running or c.state.status in ("restarting", "removing") \
                or os.path.isdir(os.path.join(lc.paths.runc_root, c.id)):
            pending.append(c)
            # free: nothing else runs yet, so this takes the lock without waiting
            await registry.lock(c.id).acquire()
            lc.restoring.add(c.id)
        elif spools(lc.paths.bundle(c.id)):
            lc.runner.follow_logs(c, 0)     # output its conmon wrote while we were away
    # runtimes first: a leftover conmon's pid is read from the bundle set aside next,
    # and a rootfs is unmounted once no runc container runs in it
    await remove_stray_runtime(lc.paths, lc.runtimes.default,
                               {c.id for c in registry.all() if c.state.running}
                               | {c.id for c in pending})
    # renames only: their deletes wait until the exits are recorded (settle)
    aside = await asyncio.to_thread(_set_aside_orphans, lc.paths,
                                    {c.id for c in registry.all()}, lc.runner.set_aside)
    return Loaded(pending, aside)


async def _paused_still(lc: Lifecycle, c: Container) -> None:
    """A container re-attached paused stays paused, unless it was thawed meanwhile
    (behind the daemon's back): then it is recorded running, as dockerd's restore."""
    try:
        status = (await lc.runtimes.of(c).state(c.id)).get("status")
    except DockerError as e:
        log.warning("live-restore: state of paused container %s: %s", c.id[:12], e.message)
        return
    if status == "running":
        log.info("live-restore: %s was thawed meanwhile; recorded running", c.id[:12])
        lc.registry.commit_fact(c, state=c.state.unpaused(c.id))


async def settle(lc: Lifecycle, loaded: Loaded, budget: float) -> None:
    """Finish the daemon start: stop what was left running, release what dead runs
    hold, finish removals, then restart what the restart policies say. With up to
    SETTLE_WAIT_ALL containers to handle this is done before the API answers, as
    dockerd does; with more it waits at most `budget` seconds and the rest goes on in
    the background (a start after a crash with 1,000 containers left running must
    answer the API in a second or two), each container locked until its turn, so
    verbs on it wait for it."""
    work = len(loaded.pending) + sum(1 for c in lc.registry.all() if c.id not in lc.restoring
                              and (c.host_config.get("RestartPolicy") or {}).get("Name")
                              not in (None, "", "no"))
    task = lc.restore_task = lc.tasks.spawn(_settle(lc, loaded), "restore containers")
    done, _ = await asyncio.wait({task}, timeout=None if work <= SETTLE_WAIT_ALL else budget)
    if not done:
        log.info("restoring %d containers goes on in the background", len(lc.restoring))


async def _settle(lc: Lifecycle, loaded: Loaded) -> None:
    registry, pending = lc.registry, loaded.pending
    locked = {c.id: registry.lock(c.id) for c in pending}     # held since load
    to_start: list[Container] = []

    async def record_one(c: Container) -> None:
        try:
            await _record_locked(lc, c)
        except DockerError as e:        # a full disk, say: the next start does it again
            log.error("recording the exit of %s: %s", c.id[:12], e.message)

    async def release_one(c: Container) -> None:
        try:
            if not c.state.running:     # its exit not recorded: left to the next start
                await _release_locked(lc, c)
        finally:
            lc.restoring.discard(c.id)
            locked.pop(c.id).release()
        if registry.find(c.id) is not c:
            return
        if c.host_config.get("AutoRemove") and c.state.status == "exited":
            await lc.remove(c.id, force=True, volumes=True)

    async def restart_one(c: Container) -> None:
        try:
            async with lc.locked(c):
                if not c.state.running:
                    await lc.start_locked(c)
        except DockerError as e:
            log.warning("could not restart %s: %s", c.id[:12], e.message)
        finally:
            lc.restoring.discard(c.id)
    try:
        # first every exit recorded (a signal and a wait each: many at once), so
        # `docker ps` is right soon; then the slow part, what the runs held released
        await for_each(pending, record_one, RECORD_CONCURRENCY)
        # what a crash left (set aside at load) is deleted in the background, as a
        # removal's is: the start does not wait for their deletes
        lc.runner.purge_later(loaded.aside)
        await for_each(pending, release_one, RESTORE_CONCURRENCY)
        for c in registry.all():
            if not c.state.running and restart_at_daemon_start(
                    c.host_config["RestartPolicy"], c.state.exit_code, c.restart_count,
                    c.manually_stopped, c.has_been_started):
                to_start.append(c)
                lc.restoring.add(c.id)
        # a container that joins another's network namespace or links to it needs
        # that one running first: those start after the others, one at a time, oldest first
        later = [c for c in to_start if _needs_others(c)]
        await for_each([c for c in to_start if not _needs_others(c)], restart_one,
                       RESTORE_CONCURRENCY)
        for c in sorted(later, key=lambda c: c.created):
            await restart_one(c)
    finally:                            # cancelled (shutdown): the next start goes on
        for lock in locked.values():
            lock.release()
        lc.restoring.difference_update(set(locked) | {c.id for c in to_start})


async def _record_locked(lc: Lifecycle, c: Container) -> None:
    """A container found needing work at daemon start (its lock held): a run left
    recorded running is killed (not live-restoring) and its exit recorded; one left
    paused is thawed first, else it would never die. dockerd's restore stops it
    gracefully instead (stop signal, then SIGKILL after its stop timeout): SIGKILL at
    once is a deliberate difference (docs/ARCHITECTURE.md, daemon start)."""
    if c.state.status == "removing":
        return
    if spools(lc.paths.bundle(c.id)):
        lc.runner.follow_logs(c, 0)     # output its conmon wrote while we were away
    if c.state.running or c.state.status == "restarting":
        if c.state.running and c.state.conmon_pid \
                and conmon.is_monitor_of(c.state.conmon_pid, c.id):
            # not live-restoring: what was left running is killed (dockerd stops it
            # gracefully; its conmon continued first: a daemon that died may have
            # left it stopped)
            continue_process(c.state.conmon_pid,
                             lambda: conmon.is_monitor_of(c.state.conmon_pid, c.id))
            if c.state.status == "paused":
                try:
                    await thaw(lc.runtimes.of(c), c)    # a frozen process never dies
                except DockerError as e:                # its runtime no longer configured
                    log.warning("thawing %s: %s", c.id[:12], e.message)
            # one frozen but recorded running is killed through the runtime (killing.py)
            if not await kill_and_wait(lambda: lc.runtimes.of(c), c,
                                       wait_pid(c.state.conmon_pid), KILL_WAIT):
                # recorded exited all the same (its release, a forced runtime delete,
                # comes next): a start that never ends would be worse
                log.error("container %s did not die within %ss of SIGKILL", c.id[:12],
                          KILL_WAIT)
        await lc.exits.record_exit(c, release=False)


async def _release_locked(lc: Lifecycle, c: Container) -> None:
    """Then what its run held is released (a removal under way finished)."""
    if c.state.status == "removing":
        await lc.finish_removal_locked(c)
        return
    kill_leftover_conmon(lc.paths, c.id)    # a crash inside a start: its conmon lives
    await lc.exits.release(c)


def _needs_others(c: Container) -> bool:
    return str(c.host_config.get("NetworkMode") or "").startswith("container:") or bool(c.links)


def _set_aside_orphans(paths: Paths, known: set[str],
                       set_aside: Callable[[str], list[str]]) -> list[str]:
    """Files of containers the store does not know (a crash inside create or remove):
    those of an unknown id set aside (unmounted, renamed); returns every directory
    set aside, to be purged."""
    doomed: list[str] = []
    for parent in (os.path.join(paths.data_root, "containers"),
                   os.path.join(paths.exec_root, "containers")):
        try:
            entries = os.listdir(parent)
        except FileNotFoundError:
            continue
        for cid in entries:
            if cid not in known and len(cid) == 64:
                log.info("removing the files of unknown container %s", cid[:12])
                doomed.extend(set_aside(cid))
            elif cid.startswith(ASIDE):         # a removal's files a crash left
                doomed.append(os.path.join(parent, cid))
    return list(dict.fromkeys(doomed))
