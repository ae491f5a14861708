"""Ending a container's process with SIGKILL, frozen or not, and thawing a paused one.

On cgroup v1 a signal to a frozen process stays pending until its cgroup is
thawed: SIGKILL alone never ends a container frozen behind the daemon's back (or
paused while recorded running: a pause on a full disk, then a live-restore).
dockerd always goes through `runc kill`, which thaws a frozen container when it
sends SIGKILL (libcontainer's Signal): its `docker kill` of one takes 0.1 s.
Here os.kill stays the fast path (a syscall where runc is a ~10 ms subprocess:
rm -f and stop of a running container), and only an exit not seen within
RUNTIME_KILL_AFTER brings the runtime's kill.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal as _signal
import time
from typing import Awaitable, Callable

from ..errors import DockerError
from ..runtime.runc import Runc
from .model import Container

log = logging.getLogger("pydockerd.containers")

# An exit not seen this long after os.kill's SIGKILL brings the runtime's kill. A
# killed busybox's conmon ends within 0.1 s even under bench/run_bench.py's rm -f
# of 100 containers on 2 cores (106 kills: median 41 ms, max 101 ms); 1 s leaves
# room for a loaded host or a process with gigabytes to free, so a spurious `runc
# kill` (harmless: one more SIGKILL, ~10 ms of CPU) stays rare, and it bounds what
# a frozen one costs over dockerd (stop -t 1 of one: ~2 s here, 1.1 s with dockerd).
RUNTIME_KILL_AFTER = 1.0


def signal_pid(pid: int, sig: int) -> None:
    """Signal a container's process; nothing when it is gone (or unknown: 0)."""
    if pid <= 0:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


async def kill_and_wait(runtime: Callable[[], Runc], c: Container,
                        exited: Awaitable[object], bound: float) -> bool:
    """SIGKILL the container's process and wait at most `bound` seconds in all for
    `exited` (the exit monitor's event, or its conmon's end); when it is not seen
    within RUNTIME_KILL_AFTER, the runtime's kill is sent too (it thaws a frozen
    container). The runtime is looked up only then: a container whose runtime is no
    longer configured (--add-runtime dropped at a restart) is still killed by
    os.kill. True when the exit was seen."""
    began = time.monotonic()
    waiter = asyncio.ensure_future(exited)
    try:
        signal_pid(c.state.pid, _signal.SIGKILL)
        done, _ = await asyncio.wait({waiter}, timeout=min(RUNTIME_KILL_AFTER, bound))
        if done:
            return True
        log.info("container %s still runs %.1fs after SIGKILL (frozen?): killing it "
                 "through the runtime", c.id[:12], time.monotonic() - began)
        try:
            await runtime().kill(c.id, _signal.SIGKILL,
                               timeout=max(0.1, bound - (time.monotonic() - began)))
        except DockerError as e:        # gone meanwhile, say
            log.info("runtime kill of %s: %s", c.id[:12], e.message)
        left = bound - (time.monotonic() - began)
        if left > 0 and not waiter.done():
            await asyncio.wait({waiter}, timeout=left)
        return waiter.done()
    finally:
        if not waiter.done():
            waiter.cancel()


async def thaw(runtime: Runc, c: Container) -> bool:
    """Resume a paused container being stopped or killed (a signal to a frozen
    process is pending until then). A failure is logged, not raised: the stop goes
    on. True when it was resumed."""
    try:
        await runtime.resume(c.id)
    except DockerError as e:
        log.warning("resuming paused container %s: %s", c.id[:12], e.message)
        return False
    return True
