"""Activated legacy plugins, as dockerd's pkg/plugins/plugins.go: `get(name, kind)` finds
the plugin (discovery.find), makes the `Plugin.Activate` handshake (retried while the
plugin starts, see client.py) and keeps it; a failed activation is forgotten, so the next
`get` discovers and activates again. A kept plugin is not re-activated when its process
restarts: calls simply reach the new process at the same address.

Managed plugins (plugins/managed/, `docker plugin install`) are asked first, as dockerd's
plugin store does: an enabled one is used without a handshake (its config lists what it
implements), a disabled one is an error (`plugin <name> found but disabled`), and only a
name no managed plugin has falls back to the legacy lookup.
"""
from __future__ import annotations

import asyncio
import logging
import time
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import DockerError, NotFound, SystemError_
from .client import RETRY_BUDGET, PluginClient, backoff
from .discovery import PluginDirs, PluginSpec, find, possible_name, scan

ENV_RETRY_TIMEOUT = "PYDOCKERD_PLUGIN_RETRY_TIMEOUT"

log = logging.getLogger("pydockerd.plugins")


@dataclass(frozen=True)
class Plugin:
    name: str
    client: PluginClient
    implements: tuple[str, ...]
    # a managed plugin's paths are inside its rootfs (dockerd's ScopedPath): the rootfs on
    # the host, and its PropagatedMount with the host directory behind it
    rootfs: str = ""
    propagated_mount: str = ""
    propagated_source: str = ""

    def host_path(self, path: str) -> str:
        """Where a path the plugin answered (a volume's Mountpoint) is on the host."""
        if not self.rootfs:
            return path
        pm = self.propagated_mount
        if pm and (path == pm or path.startswith(pm.rstrip("/") + "/")):
            return os.path.join(self.propagated_source, path[len(pm):].lstrip("/"))
        return os.path.join(self.rootfs, path.lstrip("/"))


class ManagedPlugins(Protocol):
    """What the registry asks of the managed plugins (plugins/managed/)."""

    def find_managed(self, name: str) -> Plugin | None:
        """The enabled managed plugin `name` (None: no managed plugin has that name; a
        Conflict when it is disabled)."""

    def managed_all(self) -> list[Plugin]:
        """Every enabled managed plugin."""


class PluginRegistry:
    def __init__(self, dirs: PluginDirs, retry_budget: float = RETRY_BUDGET,
                 managed: ManagedPlugins | None = None) -> None:
        self.dirs = dirs
        self.managed = managed
        self.retry_budget = retry_budget
        self._active: dict[str, Plugin] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str], managed: ManagedPlugins | None = None
                 ) -> "PluginRegistry":
        """Discovery directories and the retry budget (seconds, dockerd's 30 by default)
        from the environment (discovery.py names the directory variables)."""
        try:
            budget = float(env.get(ENV_RETRY_TIMEOUT) or RETRY_BUDGET)
        except ValueError:
            budget = RETRY_BUDGET
        return cls(PluginDirs.from_env(env), max(budget, 0.0), managed)

    async def _find(self, name: str) -> PluginSpec:
        """Discovery, retried with the client's back-off while the plugin is missing (a
        plugin starting with the daemon), as dockerd 20.10 does; a name that cannot be a
        file name is not found at once."""
        start = time.monotonic()
        retries = 0
        while True:
            spec = await asyncio.to_thread(find, self.dirs, name)
            if spec is not None:
                return spec
            pause = backoff(retries, self.retry_budget)
            if not possible_name(name) or \
                    time.monotonic() - start + pause >= self.retry_budget:
                raise NotFound(f'plugin "{name}" not found')
            retries += 1
            log.warning("Unable to locate plugin: %s, retrying in %gs", name, pause)
            await asyncio.sleep(pause)

    async def _activate(self, name: str) -> Plugin:
        spec = await self._find(name)
        client = PluginClient(spec, self.retry_budget)
        try:
            manifest = await client.call("Plugin.Activate")
        except SystemError_ as e:
            raise SystemError_(f"legacy plugin: {e.message}") from None
        implements = manifest.get("Implements")
        if not isinstance(implements, list) or \
                not all(isinstance(i, str) for i in implements):
            raise SystemError_(f"legacy plugin: Plugin.Activate: {name} answered no "
                               "Implements list")
        log.info("plugin %s activated at %s: implements %s", name, spec.addr,
                 ", ".join(implements))
        return Plugin(name, client, tuple(implements))

    async def _plugin(self, name: str) -> Plugin:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            p = self._active.get(name)
            if p is None:
                p = await self._activate(name)
                self._active[name] = p
            return p

    async def get(self, name: str, kind: str) -> Plugin:
        """The activated plugin `name` implementing `kind` (e.g. "VolumeDriver").
        NotFound when no such plugin is installed; SystemError_ (prefixed "legacy plugin:")
        when it cannot be activated or does not implement `kind`."""
        m = self.managed.find_managed(name) if self.managed is not None else None
        p = m if m is not None else await self._plugin(name)
        if kind not in p.implements:
            raise SystemError_("legacy plugin: Plugin does not implement the requested "
                               "driver")
        return p

    def active(self, kind: str) -> list[Plugin]:
        """The plugins activated so far that implement `kind` (no I/O)."""
        return [p for p in self._active.values() if kind in p.implements]

    async def all(self, kind: str) -> list[Plugin]:
        """Every installed plugin implementing `kind` (dockerd's GetAll): the activated
        ones and whatever discovery finds; one that cannot be activated is logged and
        left out."""
        managed = self.managed.managed_all() if self.managed is not None else []
        names = list(dict.fromkeys(list(self._active) +
                                   await asyncio.to_thread(scan, self.dirs)))
        found = await asyncio.gather(*(self._plugin(n) for n in names),
                                     return_exceptions=True)
        out = [p for p in managed if kind in p.implements]
        for name, p in zip(names, found):
            if isinstance(p, Plugin):
                if kind in p.implements:
                    out.append(p)
            elif isinstance(p, DockerError):
                log.error("plugin %s: %s", name, p.message)
            elif isinstance(p, BaseException):
                raise p
        return out
