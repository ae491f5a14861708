"""The registry: the one owner of container records and names.

Every change is written to the store first and applied in memory only when
the write succeeded (`commit`), so the daemon never shows a state it could
not persist, and a restart never brings back one it did not show.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Callable

from ..errors import Conflict, InvalidParameter, NoSpace, NotFound
from ..events import EventBus
from ..store import Store
from . import links
from .model import Container
from .state import STATUSES

log = logging.getLogger("pydockerd.containers")

KIND = "container"
EXEC_KIND = "exec"


def name_conflict(name: str, owner: str) -> Conflict:
    return Conflict(f"Conflict. The container name \"/{name}\" is already in use by "
                    f"container \"{owner}\". You have to remove (or rename) that container "
                    "to be able to reuse that name.")


class ContainerRegistry:
    def __init__(self, store: Store, events: EventBus) -> None:
        self.store = store
        self.events = events
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # the status each registered container is counted under, and the counts by
        # status: kept as states change (`_track`), so counting needs no walk
        self._counted: dict[str, str] = {}
        self._counts: dict[str, int] = dict.fromkeys(STATUSES, 0)

    # ---- lookup ---------------------------------------------------------------

    def all(self) -> list[Container]:
        return list(self._containers.values())

    def find(self, cid: str) -> Container | None:
        """By full id only; None when it is gone."""
        return self._containers.get(cid)

    def get(self, ref: str) -> Container:
        """Find by full id, name (with or without '/'), or unique id prefix."""
        if not ref:
            raise NotFound("No such container: ")
        c = self._containers.get(ref)
        if c:
            return c
        cid = self._names.get(ref.lstrip("/"))
        if cid:
            return self._containers[cid]
        parent_name, _, alias = ref.strip("/").rpartition("/")
        if parent_name:                 # a link name: /<parent>/<alias>
            parent = self._containers.get(self._names.get(parent_name, ""))
            link = next((k for k in parent.links if k.alias == alias), None) if parent else None
            child = self._containers.get(link.child_id) if link else None
            if child is not None:
                return child
            raise NotFound(f"No such container: {ref}")
        matches = [c for i, c in self._containers.items() if i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def owner_of_name(self, name: str) -> str | None:
        return self._names.get(name)

    def lock(self, cid: str) -> asyncio.Lock:
        """The container's verb lock (every lifecycle verb runs under it)."""
        return self._locks.setdefault(cid, asyncio.Lock())

    def using_image(self, image_id: str) -> list[str]:
        return [c.id for c in self._containers.values() if c.image_id == image_id]

    def using_volume(self, name: str) -> list[str]:
        return [c.id for c in self._containers.values()
                if any(v.name == name for v in c.volumes)]

    def running_count(self) -> int:
        """How many containers run (or are paused), kept as states change: no walk."""
        return self._counts["running"] + self._counts["paused"]

    def state_counts(self) -> dict[str, int]:
        """How many containers are in each status (every status of state.STATUSES,
        zeros included), kept as states change: no walk."""
        return dict(self._counts)

    def is_running(self, cid: str) -> bool:
        """Running or paused (an unknown id is not running)."""
        c = self._containers.get(cid)
        return c is not None and c.state.running

    def name_of(self, cid: str) -> str | None:
        """The container's name without the leading "/"; None when it is gone."""
        c = self._containers.get(cid)
        return c.name.lstrip("/") if c is not None else None

    def endpoint_links(self, cid: str, network: str) -> dict[str, str]:
        """The legacy link aliases of a container's endpoint on a user-defined network."""
        c = self._containers.get(cid)
        return links.endpoint_aliases(c, network) if c is not None else {}

    def dns_servers(self, cid: str) -> list[str]:
        """The container's own --dns servers (HostConfig.Dns)."""
        c = self._containers.get(cid)
        return list(c.host_config.get("Dns") or ()) if c is not None else []

    # ---- changes: store first, then memory ------------------------------------

    def adopt(self, c: Container) -> None:
        """Register a container loaded from the store (daemon start-up)."""
        self._containers[c.id] = c
        self._names[c.name] = c.id
        self._track(c)

    def add(self, c: Container, rename: Callable[[], str] | None = None) -> None:
        """Register a new container. Its name taken: Conflict, or with `rename` (the
        name was generated, not asked for) names from it until one is free."""
        owner = self._names.get(c.name)
        while owner is not None and rename is not None:
            c.name = rename()
            owner = self._names.get(c.name)
        if owner is not None:
            raise name_conflict(c.name, owner)
        self.store.put_json(KIND, c.id, c.to_json())
        self.adopt(c)

    def commit(self, c: Container, **changes: Any) -> None:
        """Persist `c` with `changes` applied, then apply them to the live record.

        A failed store write leaves the live record as it was."""
        if changes:
            new = dataclasses.replace(c, **changes)
            if c.id in self._containers:
                self.store.put_json(KIND, c.id, new.to_json())
            for key, value in changes.items():
                setattr(c, key, value)
            self._track(c)
        elif c.id in self._containers:
            self.store.put_json(KIND, c.id, c.to_json())

    def commit_fact(self, c: Container, **changes: Any) -> None:
        """Record what already happened (a process started or exited, a removal under
        way): on a full disk (NoSpace) the live record still follows the fact, and
        the next daemon start reconciles the store with the runtime again."""
        try:
            self.commit(c, **changes)
        except NoSpace as e:
            log.error("%s: not recorded (%s): %s", c.id[:12], ", ".join(changes), e.message)
            for key, value in changes.items():
                setattr(c, key, value)
            self._track(c)

    def _track(self, c: Container) -> None:
        """Every state change passes here (adopt, commit): the counts follow. A record
        that is not the registered one (a stale copy) changes nothing."""
        if self._containers.get(c.id) is c:
            self._count_as(c.id, c.state.status)

    def _count_as(self, cid: str, status: str | None) -> None:
        """The one place the counts by status change: `cid` is now counted under
        `status` (None: no longer counted, it was forgotten)."""
        old = self._counted.get(cid)
        if status == old:
            return
        if old is not None:
            self._counts[old] -= 1
            del self._counted[cid]
        if status is not None:
            self._counts[status] = self._counts.get(status, 0) + 1
            self._counted[cid] = status

    def rename(self, c: Container, new_name: str) -> str:
        owner = self._names.get(new_name)
        if owner is not None:
            raise name_conflict(new_name, owner)
        old = c.name
        self.commit(c, name=new_name)
        self._names.pop(old, None)
        self._names[new_name] = c.id
        return old

    def remove(self, c: Container) -> None:
        """Forget the container and its exec records (store first)."""
        with self.store.transaction():
            for eid in c.exec_ids:
                self.store.delete(EXEC_KIND, eid)
            self.store.delete(KIND, c.id)
        self.forget(c)

    def forget(self, c: Container) -> None:
        """Drop the in-memory record only (a create that failed before it was stored)."""
        if self._containers.get(c.id) is c:
            del self._containers[c.id]
            self._count_as(c.id, None)
        if self._names.get(c.name) == c.id:
            del self._names[c.name]
        self._locks.pop(c.id, None)

    # ---- events ---------------------------------------------------------------

    def event(self, c: Container, action: str, extra: dict[str, str] | None = None) -> None:
        attrs = {"image": c.image, "name": c.name}
        attrs.update(c.labels)
        if extra:
            attrs.update(extra)
        self.events.publish("container", action, c.id, attrs)
