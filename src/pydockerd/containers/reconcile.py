"""Start-up reconciliation of the runtime with the records.

A daemon killed in the middle of a start can leave a runc container (and its
conmon and init process) for a container the store records as created or
exited, or for one it does not know at all (killed inside create or remove).
Such a leftover would make the next start fail (`container with given ID
already exists`) and keep processes running for a removed container. At
start-up, before anything is restarted, every runc container and conmon of a
container that is not recorded as running is removed.
"""
from __future__ import annotations

import logging
import os
import signal

from ..runtime import conmon
from ..runtime.runc import Runc
from ..util.tasks import for_each
from .paths import Paths

STRAY_CONCURRENCY = 8

log = logging.getLogger("pydockerd.containers")


def _conmon_pid(paths: Paths, cid: str) -> int:
    try:
        with open(os.path.join(paths.bundle(cid), "conmon.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def stray_runtime_ids(paths: Paths, running: set[str]) -> list[str]:
    """Ids with runtime state (runc state or a bundle) that are not recorded running."""
    found: set[str] = set()
    for parent in (paths.runc_root, os.path.join(paths.exec_root, "containers")):
        try:
            found.update(e for e in os.listdir(parent) if len(e) == 64)
        except FileNotFoundError:
            continue
    return sorted(found - running)


async def remove_stray_runtime(paths: Paths, runc: Runc, running: set[str]) -> None:
    """Delete runc containers and kill conmons of containers not recorded running
    (several at a time: a crash with 1,000 containers running leaves 1,000)."""
    async def remove(cid: str) -> None:
        pid = _conmon_pid(paths, cid)
        if os.path.isdir(os.path.join(paths.runc_root, cid)):
            log.info("removing the leftover runtime container %s", cid[:12])
            await runc.delete(cid, force=True)
        kill_leftover_conmon(paths, cid, pid)
    await for_each(stray_runtime_ids(paths, running), remove, STRAY_CONCURRENCY)


def kill_leftover_conmon(paths: Paths, cid: str, pid: int | None = None) -> None:
    """Kill the conmon of a container that is not recorded running, if one is alive."""
    pid = _conmon_pid(paths, cid) if pid is None else pid
    if pid and conmon.is_monitor_of(pid, cid):
        log.info("killing the leftover conmon %d of %s", pid, cid[:12])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
