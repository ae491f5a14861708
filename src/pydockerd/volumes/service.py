"""Volumes: create, inspect, list, remove, prune, and mount/unmount for containers,
through a VolumeDriver (driver.py): `local` or a legacy volume plugin (plugin.py).

Services know nothing about HTTP. Which containers use a volume is the container
registry's knowledge, given to the constructor as a VolumeUsers (any state counts,
as in dockerd: a stopped container still holds its volumes).
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import logging
import os
import re
from typing import TYPE_CHECKING, Protocol

from ..errors import (Conflict, DockerError, InvalidParameter, NoSpace, NotFound,
                      SystemError_, no_space)
from ..events import EventBus
from ..store import Store
from ..util.ids import new_id
from ..util.du import dir_size
from ..plugins import PluginRegistry
from .driver import DriverVolume, VolumeDriver
from .drivers import VolumeDrivers
from .local import LocalDriver, validate_options
from .model import ANONYMOUS_LABEL, Volume, VolumeUsage
from ..util.filters import filter_bool, labels_match
from ..util.idmap import IDENTITY, IdMap
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
else:   # OpenSSL's digests: loaded by the first one (issue 10: idle memory)
    hashlib = lazy_import("hashlib")

log = logging.getLogger("pydockerd.volumes")

KIND = "volume"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LIST_FILTERS = ("name", "label", "label!", "dangling", "driver")
_PRUNE_FILTERS = ("label", "label!", "all")
ZERO_TIME = "0001-01-01T00:00:00Z"           # Go's zero time.Time, as dockerd shows it

# aliases: inside VolumeService, `list` names the method
Filters = dict[str, list[str]]
Names = list[str]
Usages = list[tuple[Volume, VolumeUsage]]
Warnings = list[str]


class VolumeUsers(Protocol):
    """Which containers (in any state) reference a volume."""

    def using_volume(self, name: str) -> list[str]: ...


def _validate_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter(f"create {name}: volume name is too short, names should be at "
                               "least two alphanumeric characters")
    if len(name.encode()) > 255:       # NAME_MAX: its directory could not be made
        raise InvalidParameter(f"create {name[:64]}...: volume name is too long, names "
                               "can be at most 255 bytes")
    if not _NAME_RE.match(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")


def mount_id(container_id: str, destination: str) -> str:
    """The id a driver sees for one container's mount of a volume at `destination`: 64
    hex digits like dockerd's, derived rather than random so that it is the same after a
    daemon restart (a running container's mounts are re-registered, not made again)."""
    return hashlib.sha256(f"{container_id}\0{destination}".encode()).hexdigest()


class VolumeService:
    def __init__(self, data_root: str, store: Store, events: EventBus,
                 containers: VolumeUsers, plugins: PluginRegistry | None = None,
                 ids: IdMap = IDENTITY) -> None:
        self.store = store
        self.containers = containers
        self.events = events
        self.local = LocalDriver(os.path.join(data_root, "volumes"), ids)
        self.drivers = VolumeDrivers(self.local, plugins)
        self._volumes: dict[str, Volume] = {}
        self._mounts: dict[tuple[str, str], list[str]] = {}   # (volume, container) -> ids
        self._creating: dict[str, asyncio.Lock] = {}
        for name, d in store.all(KIND).items():
            try:
                self._volumes[name] = Volume.from_dict(d)
            except TypeError:
                log.error("volume %s has an unreadable record; skipping", name)

    # ---- lookup -------------------------------------------------------------------

    def get(self, name: str) -> Volume:
        """The recorded volume (no driver call)."""
        v = self._volumes.get(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def driver_in_use(self, driver: str) -> bool:
        """Whether a recorded volume belongs to `driver` (a managed plugin in use)."""
        return any(v.driver == driver for v in self._volumes.values())

    def exists(self, name: str) -> bool:
        return name in self._volumes

    async def _refresh(self, vol: Volume, drv: VolumeDriver, dv: DriverVolume) -> Volume:
        return dataclasses.replace(vol, mountpoint=dv.mountpoint or vol.mountpoint,
                                   created_at=dv.created_at or vol.created_at,
                                   status=dv.status, scope=await drv.scope())

    async def inspect(self, name: str) -> Volume:
        """`docker volume inspect`: a plugin's volume as the plugin reports it now (its
        Mountpoint, Status, Scope); one the plugin made itself is found by asking every
        installed volume plugin, as dockerd."""
        vol = self._volumes.get(name)
        if vol is None:
            for drv in await self.drivers.plugins_all():
                try:
                    dv = await drv.get(name)
                except DockerError:
                    continue
                if dv is not None:
                    return await self._refresh(self._unrecorded(drv.name, dv), drv, dv)
            raise NotFound(f"get {name}: no such volume")
        if vol.driver == "local":
            return vol
        driver = await self.drivers.get(vol.driver)
        try:
            dv = await driver.get(name)
        except DockerError as e:
            raise SystemError_(f"get {name}: error while checking if volume \"{name}\" "
                               f"exists in driver \"{vol.driver}\": {e.message}") from None
        if dv is None:
            raise NotFound(f"get {name}: no such volume")
        return await self._refresh(vol, driver, dv)

    @staticmethod
    def _unrecorded(driver: str, dv: DriverVolume) -> Volume:
        return Volume(name=dv.name, driver=driver, mountpoint=dv.mountpoint,
                      created_at=dv.created_at or ZERO_TIME)

    async def _plugin_volumes(self) -> tuple[list[Volume], Warnings]:
        """Every installed volume plugin's List (concurrently); a plugin that fails is a
        warning and only the volumes recorded for it are listed, as dockerd."""
        drivers = await self.drivers.plugins_all()
        answers = await asyncio.gather(*(d.list() for d in drivers), return_exceptions=True)
        out: list[Volume] = []
        warnings: Warnings = []
        for drv, ans in zip(drivers, answers):
            if isinstance(ans, DockerError):
                warnings.append(ans.message)
                log.warning("listing volumes of plugin %s: %s", drv.name, ans.message)
                out += [v for v in self._volumes.values() if v.driver == drv.name]
                continue
            if isinstance(ans, BaseException):
                raise ans
            scope = await drv.scope()
            for dv in ans:
                rec = self._volumes.get(dv.name)
                if rec is not None and rec.driver != drv.name:
                    log.warning("volume %s already exists for driver %s; not listing the "
                                "one of %s", dv.name, rec.driver, drv.name)
                    continue
                base = rec if rec is not None else self._unrecorded(drv.name, dv)
                out.append(dataclasses.replace(
                    base, mountpoint=dv.mountpoint or base.mountpoint,
                    created_at=dv.created_at or base.created_at, status=dv.status,
                    scope=scope))
        return out, warnings

    async def list(self, filters: Filters | None = None) -> tuple[list[Volume], Warnings]:
        """`docker volume ls`: local volumes and every volume plugin's, with warnings."""
        f = filters or {}
        for key in f:
            if key not in _LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = [filter_bool("dangling", v) for v in f.get("dangling", [])]
        plugin_vols, warnings = await self._plugin_volumes()
        vols = [v for v in self._volumes.values() if v.driver == "local"] + plugin_vols
        out = []
        for v in sorted(vols, key=lambda v: v.name):
            if f.get("name") and not any(re.search(n, v.name) for n in f["name"]):
                continue
            if f.get("driver") and not any(re.search(d, v.driver) for d in f["driver"]):
                continue
            if not labels_match(v.labels or {}, f.get("label", []), f.get("label!", [])):
                continue
            if dangling and (not self.containers.using_volume(v.name)) not in dangling:
                continue
            out.append(v)
        return out, warnings

    # ---- create / remove ------------------------------------------------------------

    async def create(self, name: str | None = None, driver: str = "",
                     driver_opts: dict[str, str] | None = None,
                     labels: dict[str, str] | None = None) -> tuple[Volume, bool]:
        """The volume (made if missing) and whether it was made now. An empty driver
        takes an existing volume of any driver, else `local`; a named one must match."""
        if name:
            lock = self._creating.setdefault(name, asyncio.Lock())
            try:
                async with lock:
                    return await self._create(name, driver, driver_opts, labels)
            finally:
                if not lock.locked() and self._creating.get(name) is lock:
                    del self._creating[name]
        return await self._create(None, driver, driver_opts, labels)

    async def _create(self, name: str | None, driver: str,
                      driver_opts: dict[str, str] | None,
                      labels: dict[str, str] | None) -> tuple[Volume, bool]:
        if name and (driver or "local") == "local":
            _validate_name(name)
        existing = self._volumes.get(name) if name else None
        if existing is not None:
            if driver and driver != existing.driver:
                raise Conflict(f"create {name}: driver '{existing.driver}' already has "
                               f"volume '{name}': volume name must be unique")
            return existing, False
        driver = driver or "local"
        try:
            drv = await self.drivers.get(driver)
        except DockerError as e:
            raise type(e)(f"create {name or ''}: {e.message}") from None
        if drv is self.local:
            try:
                validate_options(driver_opts or {})
            except InvalidParameter as e:
                raise InvalidParameter(f"create {name or ''}: {e.message}") from None
        name = name or new_id()
        self.store.require_space(f"create {name}")
        # a plugin's volume has the time its plugin reports, if any (dockerd: zero time)
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") \
            if drv is self.local else ZERO_TIME
        mountpoint = await drv.create(name, driver_opts)
        vol = Volume(name=name, driver=drv.name, mountpoint=mountpoint,
                     created_at=now, labels=None if labels is None else dict(labels),
                     options=None if driver_opts is None else dict(driver_opts))
        # all or nothing: the driver's volume, then the record; a failure undoes the first
        try:
            self.store.put(KIND, name, vol.to_dict())
        except BaseException as e:
            try:
                await drv.remove(vol)
            except DockerError as undo:
                log.warning("undoing volume %s: %s", name, undo.message)
            if no_space(e) is not None:
                raise NoSpace(f"create {name}") from e
            raise
        self._volumes[name] = vol
        self.events.publish("volume", "create", name, {"driver": driver})
        return vol, True

    async def remove(self, name: str, force: bool = False) -> None:
        """dockerd's rules: in use is a conflict even with force; force hides not-found
        (a plugin that cannot remove the volume keeps it, even with force)."""
        vol = self._volumes.get(name)
        if vol is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        users = self.containers.using_volume(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        # files first (on a full disk that makes room), then the record; a record that
        # cannot be deleted (NoSpace) keeps the volume listed, so `volume rm` can be retried
        drv = await self.drivers.get(vol.driver)
        await drv.remove(vol)
        self.store.delete(KIND, name)
        self._volumes.pop(name, None)
        self.events.publish("volume", "destroy", name, {"driver": vol.driver})

    async def prune(self, filters: Filters | None = None,
                    all_default: bool = False) -> tuple[Names, int]:
        """Remove unused volumes; only anonymous ones unless `all` (API ≥ 1.42)."""
        f = filters or {}
        for key in f:
            if key not in _PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        all_ = all_default
        for v in f.get("all", []):
            all_ = filter_bool("all", v)
        deleted: Names = []
        reclaimed = 0
        for vol in list(self._volumes.values()):
            if not all_ and not vol.anonymous:
                continue
            if not labels_match(vol.labels or {}, f.get("label", []), f.get("label!", [])):
                continue
            if self.containers.using_volume(vol.name):
                continue
            size = await self._size(vol)
            try:
                await self.remove(vol.name)
            except DockerError as e:
                log.info("prune: keeping volume %s: %s", vol.name, e.message)
                continue
            deleted.append(vol.name)
            reclaimed += max(size, 0)
        self.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    # ---- usage (system df) --------------------------------------------------------------

    async def _size(self, vol: Volume) -> int:
        """Bytes used; -1 for a plugin's volume (dockerd sizes local volumes only)."""
        if vol.driver != "local":
            return -1
        return await asyncio.to_thread(dir_size, vol.mountpoint)

    async def usage(self) -> Usages:
        out = []
        for vol in sorted(self._volumes.values(), key=lambda v: v.name):
            out.append((vol, VolumeUsage(await self._size(vol),
                                         len(self.containers.using_volume(vol.name)))))
        return out

    # ---- containers: mount / unmount ---------------------------------------------------

    async def mount(self, name: str, container_id: str, destination: str, rw: bool,
                    propagation: str = "") -> str:
        """Make the volume ready for a starting container; returns its host path."""
        vol = self.get(name)
        try:
            drv = await self.drivers.get(vol.driver)
        except DockerError as e:
            raise type(e)(f"error while mounting volume '{vol.mountpoint}': "
                          f"{e.message}") from None
        mid = mount_id(container_id, destination)
        path = await drv.mount(vol, mid)
        self._mounts.setdefault((name, container_id), []).append(mid)
        if path != vol.mountpoint:                    # a plugin may move it
            vol.mountpoint = path
        self.events.publish("volume", "mount", name, {
            "driver": vol.driver, "container": container_id, "destination": destination,
            "read/write": "true" if rw else "false", "propagation": propagation})
        return path

    async def unmount(self, name: str, container_id: str) -> None:
        """Release the container's mounts of the volume (each mount id once)."""
        vol = self._volumes.get(name)
        ids = self._mounts.pop((name, container_id), [])
        if vol is None or not ids:
            return
        drv = await self.drivers.get(vol.driver)
        failed: DockerError | None = None
        for mid in ids:
            try:
                await drv.unmount(vol, mid)
            except DockerError as e:
                failed = failed or e
        self.events.publish("volume", "unmount", name, {"driver": vol.driver,
                                                         "container": container_id})
        if failed is not None:
            raise failed

    def register(self, name: str, container_id: str, destination: str) -> None:
        """A running container found at daemon start still holds the volume."""
        vol = self._volumes.get(name)
        if vol is None:
            return
        mid = mount_id(container_id, destination)
        self._mounts.setdefault((name, container_id), []).append(mid)
        if vol.driver == "local":
            self.local.register(vol, mid)


__all__ = ["VolumeService", "Volume", "VolumeUsage", "ANONYMOUS_LABEL"]
