"""Network models (moby api/types/network): endpoint settings, create, connect."""
from __future__ import annotations

from typing import ClassVar

from .base import Int, Model, StrMap


class EndpointIPAMConfig(Model, frozen=True):
    go_type: ClassVar[str] = "network.EndpointIPAMConfig"
    IPv4Address: str | None = None
    IPv6Address: str | None = None
    LinkLocalIPs: list[str] | None = None


class EndpointSettings(Model, frozen=True):
    go_type: ClassVar[str] = "network.EndpointSettings"
    IPAMConfig: EndpointIPAMConfig | None = None
    Links: list[str] | None = None
    Aliases: list[str] | None = None
    MacAddress: str | None = None
    DriverOpts: StrMap | None = None
    GwPriority: Int | None = None
    NetworkID: str | None = None
    EndpointID: str | None = None
    Gateway: str | None = None
    IPAddress: str | None = None
    IPPrefixLen: Int | None = None
    IPv6Gateway: str | None = None
    GlobalIPv6Address: str | None = None
    GlobalIPv6PrefixLen: Int | None = None
    DNSNames: list[str] | None = None


class NetworkingConfig(Model, frozen=True):
    go_type: ClassVar[str] = "network.NetworkingConfig"
    EndpointsConfig: dict[str, EndpointSettings | None] | None = None


class IPAMConfig(Model, frozen=True):
    go_type: ClassVar[str] = "network.IPAMConfig"
    Subnet: str | None = None
    IPRange: str | None = None
    Gateway: str | None = None
    AuxiliaryAddresses: StrMap | None = None


class IPAM(Model, frozen=True):
    go_type: ClassVar[str] = "network.IPAM"
    Driver: str | None = None
    Options: StrMap | None = None
    Config: list[IPAMConfig] | None = None


_IPAM = IPAM


class ConfigReference(Model, frozen=True):
    go_type: ClassVar[str] = "network.ConfigReference"
    Network: str | None = None


class NetworkCreateRequest(Model, frozen=True):
    """POST /networks/create."""
    go_type: ClassVar[str] = "network.CreateRequest"
    Name: str | None = None
    CheckDuplicate: bool | None = None
    Driver: str | None = None
    Scope: str | None = None
    EnableIPv4: bool | None = None
    EnableIPv6: bool | None = None
    IPAM: _IPAM | None = None
    Internal: bool | None = None
    Attachable: bool | None = None
    Ingress: bool | None = None
    ConfigOnly: bool | None = None
    ConfigFrom: ConfigReference | None = None
    Options: StrMap | None = None
    Labels: StrMap | None = None


class NetworkConnect(Model, frozen=True):
    """POST /networks/{id}/connect."""
    go_type: ClassVar[str] = "network.ConnectOptions"
    Container: str | None = None
    EndpointConfig: EndpointSettings | None = None


class NetworkDisconnect(Model, frozen=True):
    """POST /networks/{id}/disconnect."""
    go_type: ClassVar[str] = "network.DisconnectOptions"
    Container: str | None = None
    Force: bool | None = None
