"""A legacy volume plugin as a VolumeDriver (dockerd's volume/drivers adapter.go and
proxy.go): each verb is one `VolumeDriver.<Verb>` call; an answer's `Err` is an error.

Messages follow dockerd: a refusal reads `VolumeDriver.<Verb>: <plugin's Err>`, an
unreachable plugin `Post "<url>": dial ...` (the URL names the plugin's socket or
address), each under the operation's prefix (`create <name>: `, `error while mounting
volume '<path>': `, ...).
"""
from __future__ import annotations

import logging
from typing import Any

from ..errors import DockerError, SystemError_
from ..plugins import Plugin, call_checked
from .driver import DriverVolume
from .model import Volume

log = logging.getLogger("pydockerd.volumes")

KIND = "VolumeDriver"


def _driver_volume(doc: Any) -> DriverVolume | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("Name"), str) or not doc["Name"]:
        return None
    status = doc.get("Status")
    return DriverVolume(doc["Name"], str(doc.get("Mountpoint") or ""),
                        str(doc.get("CreatedAt") or ""),
                        dict(status) if isinstance(status, dict) and status else None)


class PluginVolumeDriver:
    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        self._scope: str | None = None

    @property
    def name(self) -> str:
        return self.plugin.name

    async def _call(self, verb: str, args: dict[str, Any]) -> dict[str, Any]:
        return await call_checked(self.plugin.client, f"{KIND}.{verb}", args)

    async def create(self, name: str, opts: dict[str, str] | None) -> str:
        try:
            await self._call("Create", {"Name": name, "Opts": opts})
        except DockerError as e:
            raise SystemError_(f"create {name}: {e.message}") from None
        return await self._path(name)

    async def _path(self, name: str) -> str:
        """VolumeDriver.Path; "" when the plugin has none (dockerd ignores the error)."""
        try:
            mp = (await self._call("Path", {"Name": name})).get("Mountpoint")
        except DockerError as e:
            log.debug("volume plugin %s: Path %s: %s", self.name, name, e.message)
            return ""
        return self.plugin.host_path(mp) if isinstance(mp, str) and mp else ""

    async def remove(self, vol: Volume) -> None:
        try:
            await self._call("Remove", {"Name": vol.name})
        except DockerError as e:
            raise SystemError_(f"remove {vol.name}: {e.message}") from None

    async def mount(self, vol: Volume, mount_id: str) -> str:
        try:
            mp = (await self._call("Mount", {"Name": vol.name, "ID": mount_id})
                  ).get("Mountpoint")
        except DockerError as e:
            raise SystemError_(f"error while mounting volume '{vol.mountpoint}': "
                               f"{e.message}") from None
        if not isinstance(mp, str) or not mp.startswith("/"):
            raise SystemError_(f"error while mounting volume '{vol.mountpoint}': volume "
                               f"plugin {self.name} returned no absolute Mountpoint")
        return self.plugin.host_path(mp)

    async def unmount(self, vol: Volume, mount_id: str) -> None:
        try:
            await self._call("Unmount", {"Name": vol.name, "ID": mount_id})
        except DockerError as e:
            raise SystemError_(f"error unmounting volume {vol.name}: {e.message}") from None

    async def get(self, name: str) -> DriverVolume | None:
        doc = await self._call("Get", {"Name": name})
        dv = self._scoped(_driver_volume(doc.get("Volume")))
        if dv is not None and not dv.mountpoint:
            dv = DriverVolume(dv.name, await self._path(name), dv.created_at, dv.status)
        return dv

    async def list(self) -> list[DriverVolume]:
        try:
            doc = await self._call("List", {})
        except DockerError as e:
            raise SystemError_(f"list {self.name}: {e.message}") from None
        vols = doc.get("Volumes") or []
        if not isinstance(vols, list):
            raise SystemError_(f"list {self.name}: {KIND}.List: Volumes is not a list")
        return [v for v in map(self._scoped, map(_driver_volume, vols)) if v is not None]

    def _scoped(self, dv: DriverVolume | None) -> DriverVolume | None:
        """A managed plugin's Mountpoint as a host path (dockerd's ScopedPath)."""
        if dv is None or not dv.mountpoint:
            return dv
        return DriverVolume(dv.name, self.plugin.host_path(dv.mountpoint), dv.created_at,
                            dv.status)

    async def scope(self) -> str:
        """Capabilities.Scope, asked once; "local" when the plugin has no answer or an
        unknown scope (as dockerd)."""
        if self._scope is None:
            try:
                caps = (await self._call("Capabilities", {})).get("Capabilities")
            except DockerError as e:
                log.debug("volume plugin %s: Capabilities: %s", self.name, e.message)
                return "local"
            scope = str((caps or {}).get("Scope") or "local").lower() \
                if isinstance(caps, dict) or caps is None else "local"
            if scope not in ("local", "global"):
                log.warning("volume plugin %s returned an invalid scope %r", self.name,
                            scope)
                scope = "local"
            self._scope = scope
        return self._scope
