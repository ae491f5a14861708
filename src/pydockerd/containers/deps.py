"""What containers need from the other services: small role interfaces.

The container service gets its collaborators through its constructor, typed
by these Protocols (the image, network and volume services satisfy them
structurally), so no service is typed `Any` to another and the containers
package depends on roles, not on the other services' classes.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from ..images.model import Image
from ..models import EndpointSettings
from ..network.model import Endpoint as NetworkEndpoint
from ..network.model import Network, PortOptions
from ..runtime.spec_input import SpecInput
from ..util.idmap import IdMap
from ..volumes.model import Volume
from .model import Container


class Images(Protocol):
    """Image resolution and the container's read-write layer."""

    def resolve(self, ref: str) -> Image: ...
    def create_rw_layer(self, container_id: str, image: Image) -> None: ...
    def remove_rw_layer(self, container_id: str) -> None: ...
    def mount_rootfs(self, container_id: str, image: Image | None = None) -> str: ...
    def unmount_rootfs(self, container_id: str) -> None: ...
    def rw_size(self, container_id: str) -> int: ...


class Networks(Protocol):
    """Network lookup, the container's sandbox and its endpoints."""

    @property
    def bridge_gateway(self) -> str | None: ...
    def get(self, name_or_id: str) -> Network: ...
    def endpoint(self, container_id: str, network: str | None = None) -> NetworkEndpoint | None:
        ...
    def uses_embedded_dns(self, container_id: str) -> bool: ...
    def netns_path(self, container_id: str) -> str: ...
    async def create_sandbox(self, container_id: str) -> str: ...
    async def release_sandbox(self, container_id: str) -> None: ...
    async def connect(self, container_id: str, netns_path: str, network: str = "bridge",
                      settings: EndpointSettings | None = None,
                      ports: PortOptions | None = None) -> NetworkEndpoint: ...
    async def disconnect(self, container_id: str, network: str | None = None) -> None: ...


class Volumes(Protocol):
    """Named and anonymous volumes: made at create, mounted while running."""

    async def create(self, name: str | None = None, driver: str = "",
               driver_opts: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> tuple[Volume, bool]: ...
    async def remove(self, name: str, force: bool = False) -> None: ...
    async def mount(self, name: str, container_id: str, destination: str, rw: bool,
                    propagation: str = "") -> str: ...
    async def unmount(self, name: str, container_id: str) -> None: ...
    def register(self, name: str, container_id: str, destination: str) -> None: ...


class Ports(Protocol):
    """Published ports (containers/ports.py ContainerPorts)."""

    async def publish(self, c: Container) -> None: ...
    async def unpublish(self, c: Container) -> None: ...


class SpecBuilder(Protocol):
    """The OCI spec (config.json): `prepare` reads the container on the loop and
    returns a fresh value; `build` runs in a worker thread on that value only.
    `ids`: the daemon's --userns-remap mappings (identity without)."""

    ids: IdMap

    def prepare(self, c: Container, rootfs: str, netns: str | None,
                get: Callable[[str], Container]) -> SpecInput: ...
    def build(self, si: SpecInput) -> dict[str, Any]: ...


class RunObserver(Protocol):
    """Told when a container's process starts and ends (health checks)."""

    def on_start(self, c: Container) -> None: ...
    def on_exit(self, c: Container) -> None: ...
