"""What the volume service asks of a volume driver: the `local` driver (local.py) and
each legacy volume plugin (plugin.py) are used the same way through this Protocol.

A mount is identified by a mount id (one per container and destination, see
service.py); the driver counts them (local: mounts option volumes on the first, unmounts
on the last; a plugin does its own counting, as dockerd's protocol asks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .model import Volume


@dataclass(frozen=True)
class DriverVolume:
    """A volume as its driver reports it (VolumeDriver.Get/List)."""
    name: str
    mountpoint: str = ""
    created_at: str = ""
    status: dict[str, Any] | None = None


class VolumeDriver(Protocol):
    @property
    def name(self) -> str: ...
    async def create(self, name: str, opts: dict[str, str] | None) -> str:
        """Make the volume; its host path ("" when the driver gives none yet)."""
    async def remove(self, vol: Volume) -> None: ...
    async def mount(self, vol: Volume, mount_id: str) -> str:
        """Make it ready for one user; the host path to bind-mount."""
    async def unmount(self, vol: Volume, mount_id: str) -> None: ...
    async def get(self, name: str) -> DriverVolume | None: ...
    async def list(self) -> list[DriverVolume]: ...
    async def scope(self) -> str:
        """"local" or "global" (VolumeDriver.Capabilities)."""
