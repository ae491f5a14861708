"""Daemon shutdown: stop every running container within a bound, as dockerd does.

dockerd's rule (daemon.ShutdownTimeout): each container is stopped with its own
stop signal and stop timeout, all at once; the daemon waits at most the longest
of --shutdown-timeout and every container's stop timeout plus a 5 s grace (-1
anywhere: no bound). Here each exit is recorded the moment the process is gone
(a quick store write), and only then is what the run held released (network,
mounts, the runc container), a few at a time: with 1,000 containers that release
is what takes long, and what is not done by the bound is done by the next start
(the runc state directory left behind marks it, see restore.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable

from ..errors import NotFound
from ..util.tasks import cancel_and_wait
from .lifecycle import Lifecycle
from .model import Container

log = logging.getLogger("pydockerd.containers")

GRACE = 5                       # dockerd's graceTimeout, seconds
DEFAULT_STOP_TIMEOUT = 10
# releases (teardown + runc delete) at once: each is a subprocess, mounts and netlink
RELEASE_CONCURRENCY = 8


def stop_timeout(c: Container) -> int:
    st = c.config.get("StopTimeout")
    return DEFAULT_STOP_TIMEOUT if st is None else int(st)


def shutdown_bound(shutdown_timeout: float, containers: Iterable[Container]) -> float | None:
    """dockerd's ShutdownTimeout: seconds the shutdown may take; None for no bound."""
    if shutdown_timeout < 0:
        return None
    bound = float(shutdown_timeout)
    for c in containers:
        st = stop_timeout(c)
        if st < 0:
            return None
        bound = max(bound, float(st + GRACE))
    return bound


async def shutdown_containers(lc: Lifecycle, shutdown_timeout: float) -> None:
    """Stop what runs (unless live-restoring) within the bound, then end every
    background task (a restore still going on is cancelled: the next start goes on)."""
    lc.exits.shutting_down = True
    try:
        restoring = set(lc.restoring)
        await cancel_and_wait(lc.restore_task)
        if not lc.cfg.live_restore:
            running = [c for c in lc.registry.all()
                       if c.state.running and c.id not in restoring]
            bound = shutdown_bound(shutdown_timeout, lc.registry.all())
            await stop_all(lc, running, bound)
    finally:
        await lc.tasks.close()


async def stop_all(lc: Lifecycle, running: list[Container], bound: float | None) -> None:
    """Stop these in parallel; at `bound` seconds, give up on what is not done."""
    if not running:
        return
    log.info("stopping %d containers (at most %s)", len(running),
             "without a bound" if bound is None else f"{bound:g} s")
    release = asyncio.Semaphore(RELEASE_CONCURRENCY)
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_stop_one(lc, c, release), name=f"shutdown {c.id[:12]}")
             for c in running]
    _, pending = await asyncio.wait(tasks, timeout=bound)
    if pending:
        unrecorded = sum(1 for c in running if c.state.running)
        log.warning("shutdown timeout (%ss) reached: %d containers not released, %d not "
                    "recorded stopped; the next start finishes them", bound, len(pending),
                    unrecorded)
        await cancel_and_wait(*pending)


async def _stop_one(lc: Lifecycle, c: Container, release: asyncio.Semaphore) -> None:
    try:
        async with lc.locked(c):
            if not await lc.stop_for_shutdown(c):
                return
            async with release:
                await lc.exits.release(c)
    except NotFound:
        return
    except Exception:  # noqa: BLE001 - one container's failure must not stop the others
        log.exception("stopping %s at shutdown", c.id[:12])
