"""The `local` volume driver: a directory `<root>/<name>/_data`, optionally with a
filesystem mounted on it (options type/device/o, as `mount -t type -o o device`).

A volume with options is mounted when its first user (mount id) comes and unmounted
when the last one goes; the driver counts mount ids per volume.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil

from ..errors import CommandFailed, InvalidParameter, SystemError_
from ..util import cmd
from ..util.idmap import IDENTITY, IdMap
from .driver import DriverVolume
from .model import Volume
from ..util.mounts import is_mountpoint

log = logging.getLogger("pydockerd.volumes")

_VALID_OPTS = ("type", "device", "o", "size")


def validate_options(opts: dict[str, str]) -> None:
    """dockerd's local driver rules for DriverOpts."""
    if not opts:
        return
    for key in opts:
        if key not in _VALID_OPTS:
            raise InvalidParameter(f'invalid option: "{key}"')
    if "size" in opts:
        raise InvalidParameter("quota size requested but no quota support")
    for key in ("type", "device"):
        if not opts.get(key):
            raise InvalidParameter(f'missing required option: "{key}"')


class LocalDriver:
    def __init__(self, root: str, ids: IdMap = IDENTITY) -> None:
        self.root = root                                  # <data-root>/volumes
        self.ids = ids          # --userns-remap: a new volume belongs to the remapped root
        self._users: dict[str, set[str]] = {}             # volume -> mount ids

    @property
    def name(self) -> str:
        return "local"

    def data_path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    async def create(self, name: str, opts: dict[str, str] | None) -> str:
        validate_options(opts or {})
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        path = self.data_path(name)
        os.makedirs(path, mode=0o755, exist_ok=True)
        if self.ids.remapped:
            os.chown(path, *self.ids.root())
        return path

    def users(self, name: str) -> set[str]:
        return set(self._users.get(name, ()))

    def register(self, vol: Volume, mount_id: str) -> None:
        """Count a user without mounting (a container found running at daemon start)."""
        self._users.setdefault(vol.name, set()).add(mount_id)

    async def mount(self, vol: Volume, mount_id: str) -> str:
        users = self._users.setdefault(vol.name, set())
        if vol.options and not users and not is_mountpoint(vol.mountpoint):
            opts = vol.options
            argv = ["mount", "-t", opts["type"]]
            if opts.get("o"):
                argv += ["-o", opts["o"]]
            argv += [opts["device"], vol.mountpoint]
            try:
                await cmd.run(argv)
            except CommandFailed as e:
                detail = " ".join(e.stderr.split()) or e.message
                raise SystemError_(
                    f"error while mounting volume '{vol.mountpoint}': failed to mount local "
                    f"volume: mount {opts['device']}:{vol.mountpoint}, data: "
                    f"{opts.get('o', '')}: {detail}") from None
        users.add(mount_id)
        return vol.mountpoint

    async def unmount(self, vol: Volume, mount_id: str) -> None:
        users = self._users.get(vol.name)
        if users is None or mount_id not in users:
            return
        users.discard(mount_id)
        if not users:
            del self._users[vol.name]
            if vol.options and is_mountpoint(vol.mountpoint):
                try:
                    await cmd.run(["umount", vol.mountpoint])
                except SystemError_ as e:
                    log.warning("unmounting volume %s: %s", vol.name, e.message)

    async def get(self, name: str) -> DriverVolume | None:
        path = self.data_path(name)
        return DriverVolume(name, path) if os.path.isdir(path) else None

    async def list(self) -> list[DriverVolume]:
        try:
            names = sorted(os.listdir(self.root))
        except OSError:
            return []
        return [DriverVolume(n, self.data_path(n)) for n in names
                if os.path.isdir(self.data_path(n))]

    async def scope(self) -> str:
        return "local"

    async def remove(self, vol: Volume) -> None:
        await asyncio.to_thread(self._remove, vol)

    def _remove(self, vol: Volume) -> None:
        """Delete the volume's files (blocking). Never follows a live mount."""
        for _ in range(8):                   # stacked mounts: one umount each
            if not is_mountpoint(vol.mountpoint):
                break
            cmd.run_sync(["umount", vol.mountpoint], check=False)
        else:
            if is_mountpoint(vol.mountpoint):
                raise SystemError_(f"remove {vol.name}: volume is still mounted at "
                                   f"{vol.mountpoint}")
        shutil.rmtree(os.path.join(self.root, vol.name), ignore_errors=True)
        self._users.pop(vol.name, None)
