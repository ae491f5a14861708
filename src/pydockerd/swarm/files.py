"""Secrets and configs of the node's tasks. The manager sends their data with
the assignments; it is kept in memory and written only to a tmpfs of our own
(<exec-root>/swarm-files, mode 0700, mounted at first use): never under the
data root. Each task gets its files in a directory of its own there, with the
uid, gid and mode its reference asks for, bind-mounted read-only into its
container (secrets at /run/secrets/<target>, configs at their target). They go
when the task is forgotten, the data when the manager removes the object."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import InvalidParameter, NotFound
from ..util import cmd
from ..util.mounts import is_mountpoint
from .proto import swarmkit_pb2 as pb

log = logging.getLogger("pydockerd.swarm")

SECRETS_DIR = "/run/secrets"
TMPFS_SIZE = "64m"


def secret_target(name: str) -> str:
    return name if name.startswith("/") else f"{SECRETS_DIR}/{name}"


def config_target(name: str) -> str:
    return name if name.startswith("/") else f"/{name}"


def _owner(value: str, what: str) -> int:
    try:
        return int(value or "0")
    except ValueError:
        raise InvalidParameter(f"invalid {what} {value!r} of a file target") from None


class TaskFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.secrets: dict[str, bytes] = {}
        self.configs: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    def update(self, secrets: dict[str, pb.Secret], configs: dict[str, pb.Config],
               removed_secrets: set[str], removed_configs: set[str],
               complete: bool) -> None:
        if complete:
            self.secrets.clear()
            self.configs.clear()
        for sid, s in secrets.items():
            self.secrets[sid] = bytes(s.spec.data)
        for cid, c in configs.items():
            self.configs[cid] = bytes(c.spec.data)
        for sid in removed_secrets:
            self.secrets.pop(sid, None)
        for cid in removed_configs:
            self.configs.pop(cid, None)

    async def _ensure_tmpfs(self) -> None:
        if is_mountpoint(str(self.root)):
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        await cmd.run(["mount", "-t", "tmpfs", "-o",
                       f"mode=0700,size={TMPFS_SIZE},nosuid,nodev,noexec",
                       "swarm-files", str(self.root)])

    async def mounts_for(self, task_id: str, spec: pb.ContainerSpec) -> list[dict[str, Any]]:
        """Write the task's secret and config files; their bind mounts."""
        wanted: list[tuple[str, bytes, pb.FileTarget, str]] = []
        for ref in spec.secrets:
            if ref.WhichOneof("target") != "file":
                continue
            if ref.secret_id not in self.secrets:
                raise NotFound(f"secret {ref.secret_name or ref.secret_id} not found")
            wanted.append(("secrets", self.secrets[ref.secret_id], ref.file,
                           secret_target(ref.file.name)))
        for cref in spec.configs:
            if cref.WhichOneof("target") != "file":
                continue
            if cref.config_id not in self.configs:
                raise NotFound(f"config {cref.config_name or cref.config_id} not found")
            wanted.append(("configs", self.configs[cref.config_id], cref.file,
                           config_target(cref.file.name)))
        if not wanted:
            return []
        async with self._lock:
            await self._ensure_tmpfs()
            return await asyncio.to_thread(self._write, task_id, wanted)

    def _write(self, task_id: str, wanted: list[tuple[str, bytes, pb.FileTarget, str]]
               ) -> list[dict[str, Any]]:
        tdir = self.root / task_id
        shutil.rmtree(tdir, ignore_errors=True)
        mounts = []
        for i, (kind, data, target, path) in enumerate(wanted):
            d = tdir / kind
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
            f = d / str(i)
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fchown(fd, _owner(target.uid, "uid"), _owner(target.gid, "gid"))
                os.fchmod(fd, target.mode & 0o7777 if target.mode else 0o444)
            finally:
                os.close(fd)
            mounts.append({"Type": "bind", "Source": str(f), "Target": path,
                           "ReadOnly": True})
        os.chmod(tdir, 0o755)
        return mounts

    def release(self, task_id: str) -> None:
        shutil.rmtree(self.root / task_id, ignore_errors=True)

    async def close(self) -> None:
        """Leave: the tmpfs goes (the data with it)."""
        self.secrets.clear()
        self.configs.clear()
        async with self._lock:
            if is_mountpoint(str(self.root)):
                await cmd.run(["umount", str(self.root)], check=False)
            shutil.rmtree(self.root, ignore_errors=True)
