"""The managed plugins (`docker plugin`, the /plugins API), as dockerd's plugin
manager: the installed plugins (state.py), their runs (runner.py), installing
(install.py), and what the legacy plugin registry asks of them (an enabled plugin by
name, with a client to its socket).

Verbs run one at a time (one lock): they are rare and each changes the record on disk.
An enabled plugin that exits is started again (dockerd's restart of a plugin whose
container exits); enabled plugins are started again when the daemon starts and stopped
when it stops."""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ...distribution.auth import AuthConfig
from ...errors import Conflict, DockerError, InvalidParameter
from ...events import EventBus
from ...progress import ProgressEvent
from ...util.filters import filter_bool
from ...util.tasks import TaskOwner
from ..client import PluginClient
from ..discovery import PluginSpec
from ..registry import Plugin
from .state import PluginRecord, PluginStore

from ...util.lazy import lazy_import

if TYPE_CHECKING:
    from . import config
    from .install import Installer, RegistryAccess
    from .runner import PluginRunner
else:   # plugin configs: loaded with the first plugin (issue 10: idle memory)
    config = lazy_import("pydockerd.plugins.managed.config")

log = logging.getLogger("pydockerd.plugins")
_FILTERS = {"enabled", "capability"}          # moby's acceptedPluginFilterTags
RESTART_PAUSE = 1.0


class ManagedPlugins:
    def __init__(self, data_root: str, exec_root: str, socket_dir: str, runc_binary: str,
                 events: EventBus, registry: Callable[[], RegistryAccess],
                 in_use: Callable[[str], bool] = lambda name: False) -> None:
        self.store = PluginStore(os.path.join(data_root, "plugins"))
        self._run_paths = (os.path.join(exec_root, "plugins"), socket_dir, runc_binary)
        self._registry = registry     # the distribution service, built by its first use
        self.events = events
        self.in_use = in_use                 # volumes of the driver exist (dockerd's refcount)
        self._running: dict[str, Plugin] = {}         # id -> its legacy-protocol face
        # told the name of a plugin being disabled (the authz chain drops it, as dockerd)
        self.on_disable: list[Callable[[str], None]] = []
        self._lock = asyncio.Lock()
        self._watchers = TaskOwner("managed plugins")

    @cached_property
    def runner(self) -> PluginRunner:
        """Built by the first plugin started or adopted: a daemon without plugins
        never loads its modules (issue 10: idle memory)."""
        from .runner import PluginRunner, RunPaths
        plugins_dir, socket_dir, runc_binary = self._run_paths
        return PluginRunner(self.store, RunPaths(plugins_dir, socket_dir), runc_binary)

    @cached_property
    def installer(self) -> Installer:
        """Built by the first install, upgrade, push or create: its modules (registry
        transfers, tar handling) are memory an idle daemon does without (issue 10)."""
        from .install import Installer
        return Installer(self.store, self._registry())

    # --- daemon start and stop ------------------------------------------------------------
    async def start(self, live_restore: bool = False) -> None:
        """Load the installed plugins; start the enabled ones again. With live_restore,
        one still running (a previous daemon's, shut down with live-restore) is adopted
        as it runs, as dockerd's plugin manager restores its plugins."""
        for rec in await asyncio.to_thread(self.store.load):
            if not rec.enabled:
                continue
            if live_restore and await asyncio.to_thread(self.runner.adopt, rec):
                self._adopted(rec)
                continue
            try:
                await self._run(rec, 0)
            except DockerError as e:
                log.error("plugin %s could not be started again: %s", rec.name, e.message)

    async def shutdown(self, live_restore: bool = False) -> None:
        """Stop the enabled plugins; with live_restore they are left running (the next
        daemon adopts them)."""
        async with self._lock:
            await self._watchers.close()
            for rec in self.store.all():
                if rec.id in self._running:
                    self._running.pop(rec.id)
                    if not live_restore:
                        await self.runner.stop(rec)

    # --- what the legacy registry asks ------------------------------------------------------
    def find_managed(self, name: str) -> Plugin | None:
        try:
            rec = self.store.get(name)
        except DockerError:
            return None
        p = self._running.get(rec.id)
        if p is None:
            raise Conflict(f"plugin {name} found but disabled")
        return p

    def managed_all(self) -> list[Plugin]:
        return list(self._running.values())

    # --- reading ----------------------------------------------------------------------------
    def listing(self, filters: dict[str, list[str]]) -> list[PluginRecord]:
        for key in filters:
            if key not in _FILTERS:
                raise InvalidParameter(f"Invalid filter '{key}'")
        enabled: bool | None = None
        for v in filters.get("enabled", []):
            enabled = filter_bool("enabled", v)
        caps = filters.get("capability", [])
        return [r for r in self.store.all()
                if (enabled is None or r.enabled == enabled)
                and all(c in caps for c in config.capabilities(r.config) if caps)]

    def get(self, name: str) -> PluginRecord:
        return self.store.get(name)

    # --- running ----------------------------------------------------------------------------
    def _face(self, rec: PluginRecord) -> Plugin:
        sock = self.runner.paths.socket(rec)
        return Plugin(rec.name, PluginClient(PluginSpec(rec.name, "unix://" + sock)),
                      config.kinds(rec.config), rootfs=self.store.rootfs(rec.id),
                      propagated_mount=rec.config["PropagatedMount"],
                      propagated_source=self.store.propagated(rec.id))

    async def _run(self, rec: PluginRecord, timeout: float) -> None:
        await self.runner.start(rec, timeout)
        self._adopted(rec)

    def _adopted(self, rec: PluginRecord) -> None:
        """A running plugin: used by name, watched (started again when it exits)."""
        self._running[rec.id] = self._face(rec)
        self._watchers.spawn(self._watch(rec), f"plugin-{rec.id[:12]}")

    async def _watch(self, rec: PluginRecord) -> None:
        """Start the plugin again when it exits while enabled."""
        while True:
            await self.runner.wait(rec)
            async with self._lock:
                if rec.id not in self._running or self.store.plugins.get(rec.id) is not rec:
                    return
                log.warning("plugin %s exited: %s; starting it again", rec.name,
                            self.runner.log_tail(rec, 3))
                await asyncio.sleep(RESTART_PAUSE)
                try:
                    await self.runner.start(rec, 0)
                except DockerError as e:
                    log.error("plugin %s could not be started again: %s", rec.name,
                              e.message)
                    self._running.pop(rec.id, None)
                    return

    def _event(self, rec: PluginRecord, action: str) -> None:
        self.events.publish("plugin", action, rec.id, {"name": rec.name})

    async def enable(self, name: str, timeout: int) -> None:
        async with self._lock:
            rec = self.store.get(name)
            if rec.enabled:
                raise Conflict(f"plugin already enabled: plugin {rec.name} is enabled")
            await self._run(rec, float(timeout))
            rec.enabled = True
            await asyncio.to_thread(self.store.save, rec)
            self._event(rec, "enable")

    async def disable(self, name: str, force: bool) -> None:
        async with self._lock:
            rec = self.store.get(name)
            if not rec.enabled:
                raise Conflict(f"plugin is already disabled: plugin {rec.name} found but "
                               "disabled")
            if not force and self.in_use(rec.name):
                raise Conflict(f"plugin {rec.name} is in use")
            await self._stop(rec)
            self._event(rec, "disable")

    async def _stop(self, rec: PluginRecord) -> None:
        for hook in self.on_disable:
            hook(rec.name)
        self._running.pop(rec.id, None)
        await self.runner.stop(rec)
        rec.enabled = False
        await asyncio.to_thread(self.store.save, rec)

    async def remove(self, name: str, force: bool) -> None:
        async with self._lock:
            rec = self.store.get(name)
            if not force and self.in_use(rec.name):
                raise Conflict(f"plugin {rec.name} is in use")
            if rec.enabled and not force:
                raise Conflict(f"plugin {rec.name} is enabled")
            if rec.enabled:
                await self._stop(rec)
            await asyncio.to_thread(self.store.remove, rec)
            await asyncio.to_thread(self.store.gc_blobs)
            self._event(rec, "remove")

    async def set(self, name: str, args: list[str]) -> None:
        async with self._lock:
            rec = self.store.get(name)
            if rec.enabled:
                raise Conflict("cannot set on an active plugin, disable plugin before "
                               "setting")
            rec.settings = config.apply_set(rec.config, rec.settings, args)
            await asyncio.to_thread(self.store.save, rec)

    # --- installing -------------------------------------------------------------------------
    async def _installed(self, rec: PluginRecord, action: str) -> None:
        await asyncio.to_thread(self.store.save, rec)
        self._event(rec, action)

    async def privileges(self, remote: str, auth: AuthConfig) -> list[dict[str, Any]]:
        return await self.installer.privileges(remote, auth)

    async def pull(self, remote: str, name: str | None, granted: list[dict[str, Any]],
                   auth: AuthConfig) -> tuple[str, AsyncIterator[ProgressEvent]]:
        """The local name (the Docker-Plugin-Name header the CLI enables) and the pull."""
        return await self.installer.pull(remote, name, granted, auth, self._installed)

    async def upgrade(self, name: str, remote: str, granted: list[dict[str, Any]],
                      auth: AuthConfig) -> AsyncIterator[ProgressEvent]:
        rec = self.store.get(name)
        if rec.enabled:
            raise Conflict(f"plugin must be disabled before upgrading: plugin {rec.name} "
                           "is enabled")
        return await self.installer.upgrade(rec, remote, granted, auth, self._installed)

    async def push(self, name: str, auth: AuthConfig) -> AsyncIterator[ProgressEvent]:
        rec = self.store.get(name)
        self._event(rec, "push")
        return await self.installer.push(rec, auth)

    async def create(self, name: str, body: AsyncIterator[bytes]) -> None:
        async with self._lock:
            rec = await self.installer.create(name, body)
            await self._installed(rec, "create")
