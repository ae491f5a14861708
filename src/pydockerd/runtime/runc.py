"""Thin async wrapper around the runc command line (one place for its flags)."""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Callable

from ..errors import CommandFailed, Conflict, NotFound
from ..util import cmd
from .destroy import destroy_stopped
from .execfifo import start_created
from .mountns import NSENTER


class Runc:
    def __init__(self, binary: str, root: str,
                 mount_ns: Callable[[], str] = lambda: "") -> None:
        self.binary = binary
        self.root = root
        self.mount_ns = mount_ns    # the mount namespace to run in now (runtime/mountns.py)
        # runc's start (a read of the container's exec fifo) and its delete of a
        # stopped container (rmdir of its cgroups and state) are done in-process
        # (runtime/execfifo.py, destroy.py); another runtime (or a wrapper) runs its own
        self.in_process = os.path.basename(binary) == "runc"

    def argv(self, *args: str, host_ns: bool = False) -> list[str]:
        """runc's command line; in the verbs' mount namespace unless host_ns: `start`
        and `delete` may run hooks, which need the host's mounts."""
        argv = [self.binary, "--root", self.root, *args]
        ns = "" if host_ns else self.mount_ns()
        return [NSENTER, f"--mount={ns}", *argv] if ns else argv

    async def start(self, cid: str, pid: int = 0, hooks: bool = True) -> None:
        """Start a created container; `pid`: its init, `hooks`: whether its spec has
        any (runc runs the poststart hooks in its start)."""
        if self.in_process and pid > 0 and not hooks \
                and await start_created(os.path.join(self.root, cid), pid):
            return
        await cmd.run(self.argv("start", cid, host_ns=True))

    async def kill(self, cid: str, signal: int, all_procs: bool = False,
                   timeout: float | None = None) -> None:
        """runc's kill; for SIGKILL it thaws a paused (frozen) container too."""
        args = ["kill"] + (["--all"] if all_procs else []) + [cid, str(signal)]
        try:
            await cmd.run(self.argv(*args), timeout=timeout)
        except CommandFailed as e:
            if "not running" in e.stderr or "does not exist" in e.stderr:
                raise Conflict(f"Container {cid} is not running") from e
            raise

    async def delete(self, cid: str, force: bool = True) -> None:
        if force and self.in_process and await asyncio.to_thread(
                destroy_stopped, os.path.join(self.root, cid)):
            return
        try:
            await cmd.run(self.argv("delete", *(["--force"] if force else []), cid,
                                    host_ns=True))
        except CommandFailed as e:
            if "does not exist" not in e.stderr and "not found" not in e.stderr:
                raise

    async def pause(self, cid: str) -> None:
        await cmd.run(self.argv("pause", cid))

    async def resume(self, cid: str) -> None:
        await cmd.run(self.argv("resume", cid))

    async def state(self, cid: str) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(await cmd.run(self.argv("state", cid)))
            return state
        except CommandFailed as e:
            raise NotFound(f"runc: container {cid} does not exist") from e

    async def ps(self, cid: str) -> list[int]:
        return list(json.loads(await cmd.run(self.argv("ps", "--format", "json", cid))) or [])

    async def update(self, cid: str, resources: dict[str, Any]) -> None:
        await cmd.run(self.argv("update", "--resources", "-", cid),
                      input=json.dumps(resources).encode())
