"""Volumes: create, inspect, list, remove, prune, and mount/unmount for containers.

Services know nothing about HTTP. Which containers use a volume is the container
registry's knowledge, given to the constructor as a VolumeUsers (any state counts,
as in dockerd: a stopped container still holds its volumes).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
import re
from typing import Protocol

from ..errors import Conflict, InvalidParameter, NoSpace, NotFound, no_space
from ..events import EventBus
from ..store import Store
from ..util.ids import new_id
from ..util.du import dir_size
from .local import LocalDriver, validate_options
from .model import ANONYMOUS_LABEL, Volume, VolumeUsage
from ..util.filters import filter_bool, labels_match

log = logging.getLogger("pydockerd.volumes")

KIND = "volume"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LIST_FILTERS = ("name", "label", "label!", "dangling", "driver")
_PRUNE_FILTERS = ("label", "label!", "all")

# aliases: inside VolumeService, `list` names the method
Filters = dict[str, list[str]]
Names = list[str]
Usages = list[tuple[Volume, VolumeUsage]]


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


class VolumeService:
    def __init__(self, data_root: str, store: Store, events: EventBus,
                 containers: VolumeUsers) -> None:
        self.store = store
        self.containers = containers
        self.events = events
        self.local = LocalDriver(os.path.join(data_root, "volumes"))
        self._volumes: dict[str, Volume] = {}
        for name, d in store.all(KIND).items():
            try:
                self._volumes[name] = Volume.from_dict(d)
            except TypeError:
                log.error("volume %s has an unreadable record; skipping", name)

    # ---- lookup -------------------------------------------------------------------

    def get(self, name: str) -> Volume:
        v = self._volumes.get(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def exists(self, name: str) -> bool:
        return name in self._volumes

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        f = filters or {}
        for key in f:
            if key not in _LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = [filter_bool("dangling", v) for v in f.get("dangling", [])]
        out = []
        for v in sorted(self._volumes.values(), key=lambda v: v.name):
            if f.get("name") and not any(re.search(n, v.name) for n in f["name"]):
                continue
            if f.get("driver") and not any(re.search(d, v.driver) for d in f["driver"]):
                continue
            if not labels_match(v.labels or {}, f.get("label", []), f.get("label!", [])):
                continue
            if dangling and (not self.containers.using_volume(v.name)) not in dangling:
                continue
            out.append(v)
        return out

    # ---- create / remove ------------------------------------------------------------

    def create(self, name: str | None = None, driver: str = "local",
               driver_opts: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> tuple[Volume, bool]:
        """The volume (made if missing) and whether it was made now."""
        driver = driver or "local"
        if name:
            _validate_name(name)
        if driver != "local":
            raise NotFound(f"create {name or ''}: error looking up volume plugin {driver}: "
                           f"plugin \"{driver}\" not found")
        if name and name in self._volumes:
            return self._volumes[name], False
        try:
            validate_options(driver_opts or {})
        except InvalidParameter as e:
            raise InvalidParameter(f"create {name or ''}: {e.message}") from None
        name = name or new_id()
        self.store.require_space(f"create {name}")
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        vol = Volume(name=name, driver=driver, mountpoint=self.local.data_path(name),
                     created_at=now, labels=None if labels is None else dict(labels),
                     options=None if driver_opts is None else dict(driver_opts))
        # all or nothing: the directory, then the record; a failure undoes the directory
        try:
            self.local.create_dirs(name)
            self.store.put(KIND, name, vol.to_dict())
        except BaseException as e:
            self.local.remove_dirs(name)
            err = no_space(e)
            if err is not None:
                raise NoSpace(f"create {name}") from e
            raise
        self._volumes[name] = vol
        self.events.publish("volume", "create", name, {"driver": driver})
        return vol, True

    def create_anonymous(self) -> Volume:
        vol, _ = self.create(None, labels={ANONYMOUS_LABEL: ""})
        return vol

    async def remove(self, name: str, force: bool = False) -> None:
        """dockerd's rules: in use is a conflict even with force; force hides not-found."""
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
        await asyncio.to_thread(self.local.remove, vol)
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
            size = await asyncio.to_thread(dir_size, vol.mountpoint)
            try:
                await self.remove(vol.name)
            except (Conflict, NotFound):
                continue
            deleted.append(vol.name)
            reclaimed += size
        self.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    # ---- usage (system df) --------------------------------------------------------------

    async def usage(self) -> Usages:
        out = []
        for vol in self.list():
            size = await asyncio.to_thread(dir_size, vol.mountpoint)
            out.append((vol, VolumeUsage(size, len(self.containers.using_volume(vol.name)))))
        return out

    # ---- containers: mount / unmount ---------------------------------------------------

    async def mount(self, name: str, container_id: str, destination: str, rw: bool,
                    propagation: str = "") -> str:
        """Make the volume ready for a starting container; returns its host path."""
        vol = self.get(name)
        path = await self.local.mount(vol, container_id)
        self.events.publish("volume", "mount", name, {
            "driver": vol.driver, "container": container_id, "destination": destination,
            "read/write": "true" if rw else "false", "propagation": propagation})
        return path

    async def unmount(self, name: str, container_id: str) -> None:
        vol = self._volumes.get(name)
        if vol is None:
            return
        if await self.local.unmount(vol, container_id):
            self.events.publish("volume", "unmount", name, {"driver": vol.driver,
                                                             "container": container_id})

    def register(self, name: str, container_id: str) -> None:
        """A running container found at daemon start still holds the volume."""
        vol = self._volumes.get(name)
        if vol is not None:
            self.local.register(vol, container_id)


__all__ = ["VolumeService", "Volume", "VolumeUsage", "ANONYMOUS_LABEL"]
