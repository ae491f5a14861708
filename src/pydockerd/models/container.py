"""Config (moby api/types/container/config.go), the create request and commit's config."""
from __future__ import annotations

from typing import ClassVar

from .base import Empty, Int, Int64, Model, StrMap, StrSlice
from .host_config import HostConfig as _HostConfig
from .network import NetworkingConfig as _NetworkingConfig


class HealthConfig(Model, frozen=True):
    go_type: ClassVar[str] = "container.HealthConfig"
    Test: list[str] | None = None
    Interval: Int64 | None = None
    Timeout: Int64 | None = None
    StartPeriod: Int64 | None = None
    StartInterval: Int64 | None = None
    Retries: Int | None = None


class ContainerConfig(Model, frozen=True):
    """A container's Config (also the body of POST /commit)."""
    go_type: ClassVar[str] = "container.Config"
    Hostname: str | None = None
    Domainname: str | None = None
    User: str | None = None
    AttachStdin: bool | None = None
    AttachStdout: bool | None = None
    AttachStderr: bool | None = None
    ExposedPorts: dict[str, Empty | None] | None = None
    Tty: bool | None = None
    OpenStdin: bool | None = None
    StdinOnce: bool | None = None
    Env: list[str] | None = None
    Cmd: StrSlice | None = None
    Healthcheck: HealthConfig | None = None
    ArgsEscaped: bool | None = None
    Image: str | None = None
    Volumes: dict[str, Empty | None] | None = None
    WorkingDir: str | None = None
    Entrypoint: StrSlice | None = None
    NetworkDisabled: bool | None = None
    MacAddress: str | None = None
    OnBuild: list[str] | None = None
    Labels: StrMap | None = None
    StopSignal: str | None = None
    StopTimeout: Int | None = None
    Shell: StrSlice | None = None


class ContainerCreateRequest(ContainerConfig, frozen=True):
    """POST /containers/create: Config with HostConfig and NetworkingConfig beside it."""
    go_type: ClassVar[str] = "container.CreateRequest"
    HostConfig: _HostConfig | None = None
    NetworkingConfig: _NetworkingConfig | None = None
