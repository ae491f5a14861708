"""Volume create, registry auth and build-query models."""
from __future__ import annotations

from typing import ClassVar

from .base import AnyJSON, Model, StrMap


class VolumeCreateOptions(Model, frozen=True):
    """POST /volumes/create."""
    go_type: ClassVar[str] = "volume.CreateOptions"
    Name: str | None = None
    Driver: str | None = None
    DriverOpts: StrMap | None = None
    Labels: StrMap | None = None
    ClusterVolumeSpec: dict[str, AnyJSON] | None = None


class AuthConfig(Model, frozen=True):
    """registry.AuthConfig: the POST /auth body and the X-Registry-Auth header's JSON
    (Go's json tags are lower-case)."""
    go_type: ClassVar[str] = "registry.AuthConfig"
    username: str | None = None
    password: str | None = None
    auth: str | None = None
    email: str | None = None
    serveraddress: str | None = None
    identitytoken: str | None = None
    registrytoken: str | None = None


# JSON-valued query parameters of POST /build
BuildArgs = dict[str, str | None]   # map[string]*string
BuildLabels = StrMap
