"""Volume drivers by name: `local`, or a legacy volume plugin looked up (and activated)
through the plugin registry, each wrapped once as a PluginVolumeDriver."""
from __future__ import annotations

from ..errors import Conflict, DockerError, NotFound, SystemError_
from ..plugins import Plugin, PluginRegistry
from .driver import VolumeDriver
from .local import LocalDriver
from .plugin import KIND, PluginVolumeDriver


class VolumeDrivers:
    def __init__(self, local: LocalDriver, plugins: PluginRegistry | None) -> None:
        self.local = local
        self.plugins = plugins
        self._wrapped: dict[str, PluginVolumeDriver] = {}

    def _wrap(self, p: Plugin) -> PluginVolumeDriver:
        d = self._wrapped.get(p.name)
        if d is None or d.plugin is not p:
            d = self._wrapped[p.name] = PluginVolumeDriver(p)
        return d

    async def get(self, name: str) -> VolumeDriver:
        """The driver `name`; errors read `error looking up volume plugin <name>: ...`
        (NotFound when no such plugin is installed)."""
        if name == "local":
            return self.local
        prefix = f"error looking up volume plugin {name}"
        if self.plugins is None:
            raise NotFound(f'{prefix}: plugin "{name}" not found')
        try:
            return self._wrap(await self.plugins.get(name, KIND))
        except (NotFound, Conflict) as e:      # Conflict: a managed plugin, disabled
            raise type(e)(f"{prefix}: {e.message}") from None
        except DockerError as e:
            raise SystemError_(f"{prefix}: {e.message}") from None

    async def plugins_all(self) -> list[PluginVolumeDriver]:
        """Every installed volume plugin (activating those discovery finds)."""
        if self.plugins is None:
            return []
        return [self._wrap(p) for p in await self.plugins.all(KIND)]
