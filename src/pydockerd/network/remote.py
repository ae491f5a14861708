"""libnetwork's remote network driver: a legacy plugin implementing `NetworkDriver` (see
moby/libnetwork docs/remote.md and drivers/remote/driver.go). This module speaks the
protocol (request and response shapes, libnetwork's checks and messages); plugnets.py
and plugeps.py decide when each call is made.

A plugin's answer with a non-empty `Err` is an error `remote: <Err>` (a non-200 answer is
the client's `<Method>: <Err>`). ProgramExternalConnectivity and
RevokeExternalConnectivity are optional: a plugin answering 404 lacks them, as dockerd
reads it.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import SystemError_
from ..plugins import Plugin, PluginCallError, call_checked

KIND = "NetworkDriver"
OPT_GENERIC = "com.docker.network.generic"
OPT_ENABLE_IPV6 = "com.docker.network.enable_ipv6"
OPT_INTERNAL = "com.docker.network.internal"
OPT_EXPOSED_PORTS = "com.docker.network.endpoint.exposedports"
OPT_PORTMAP = "com.docker.network.portmap"
ROUTE_NEXTHOP, ROUTE_CONNECTED = 0, 1        # libnetwork's types.NEXTHOP / CONNECTED
SCOPES = ("local", "global")


class PluginGetter(Protocol):
    """Where remote drivers come from (plugins.PluginRegistry answers it)."""

    async def get(self, name: str, kind: str) -> Plugin: ...


@dataclass(frozen=True)
class Capabilities:
    scope: str                    # "local" or "global": the network's Scope
    connectivity_scope: str


@dataclass(frozen=True)
class IPAMData:
    """One pool of the network as CreateNetwork gets it (libnetwork's IPAMData)."""
    address_space: str
    pool: str                                          # "10.1.0.0/24"
    gateway: str = ""                                  # "10.1.0.1/24"
    aux: dict[str, str] = field(default_factory=dict)  # name -> "10.1.0.9/24"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"AddressSpace": self.address_space}
        if self.aux:
            doc["AuxAddresses"] = dict(self.aux)
        if self.gateway:
            doc["Gateway"] = self.gateway
        doc["Pool"] = self.pool
        return doc


@dataclass(frozen=True)
class InterfaceOut:
    """What CreateEndpoint's answer sets ("" = left to the daemon)."""
    address: str = ""              # "10.1.0.5/24"
    address6: str = ""
    mac: str = ""


@dataclass(frozen=True)
class StaticRoute:
    destination: str               # "192.0.2.0/24"
    route_type: int                # ROUTE_NEXTHOP or ROUTE_CONNECTED
    next_hop: str = ""


@dataclass(frozen=True)
class JoinInfo:
    src_name: str                  # the interface the plugin made, in the host namespace
    dst_prefix: str                # its name in the sandbox: prefix + index
    gateway: str = ""
    gateway6: str = ""
    routes: tuple[StaticRoute, ...] = ()
    disable_gateway_service: bool = False


def parse_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """libnetwork's types.ParseCIDR: an address with its prefix length."""
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise PluginCallError(f"invalid CIDR address: {text}") from None


def _cidr(text: str) -> str:
    return str(parse_cidr(text))


def _str(doc: dict[str, Any], key: str) -> str:
    v = doc.get(key)
    return v if isinstance(v, str) else ""


def _ip(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise PluginCallError(f'unable to parse {what} "{text}"') from None


def parse_interface(doc: dict[str, Any]) -> InterfaceOut | None:
    iface = doc.get("Interface")
    if not isinstance(iface, dict):
        return None
    addr, addr6, mac = _str(iface, "Address"), _str(iface, "AddressIPv6"), \
        _str(iface, "MacAddress")
    if mac:
        parts = mac.replace("-", ":").split(":")
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF"
                                                          for c in p) for p in parts):
            raise PluginCallError(f"address {mac}: invalid MAC address")
        mac = ":".join(parts).lower()
    return InterfaceOut(_cidr(addr) if addr else "", _cidr(addr6) if addr6 else "", mac)


def parse_join(doc: dict[str, Any]) -> JoinInfo:
    name = doc.get("InterfaceName")
    name = name if isinstance(name, dict) else {}
    routes = []
    for r in doc.get("StaticRoutes") or []:
        if not isinstance(r, dict):
            raise PluginCallError("Join: a static route is not an object")
        dest = _cidr(_str(r, "Destination")) if _str(r, "Destination") else ""
        hop = _str(r, "NextHop")
        if hop:
            try:
                hop = str(ipaddress.ip_address(hop))
            except ValueError:
                raise PluginCallError(f"failed to parse nexthop IP {hop}") from None
        rtype = r.get("RouteType")
        routes.append(StaticRoute(str(ipaddress.ip_interface(dest).network) if dest else "",
                                  rtype if isinstance(rtype, int) else ROUTE_NEXTHOP, hop))
    gw, gw6 = _str(doc, "Gateway"), _str(doc, "GatewayIPv6")
    return JoinInfo(_str(name, "SrcName"), _str(name, "DstPrefix"),
                    _ip(gw, "Gateway") if gw else "", _ip(gw6, "GatewayIPv6") if gw6 else "",
                    tuple(routes), bool(doc.get("DisableGatewayService")))


class LibnetworkPlugin:
    """One plugin's calls of a libnetwork protocol (`kind`: NetworkDriver, IpamDriver);
    an answer's non-empty `Err` is `remote: <Err>`."""
    kind = ""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin

    @property
    def name(self) -> str:
        return self.plugin.name

    async def _call(self, verb: str, args: dict[str, Any] | None) -> dict[str, Any]:
        return await call_checked(self.plugin.client, f"{self.kind}.{verb}", args, "remote: ")


class RemoteDriver(LibnetworkPlugin):
    """The NetworkDriver calls of one plugin."""
    kind = KIND

    async def capabilities(self) -> Capabilities:
        doc = await self._call("GetCapabilities", None)
        scope, conn = _str(doc, "Scope"), _str(doc, "ConnectivityScope")
        if scope not in SCOPES:
            raise SystemError_(f"invalid capability: expecting 'local' or 'global', got {scope}")
        if conn and conn not in SCOPES:
            raise SystemError_(f"invalid capability: expecting 'local' or 'global', got {scope}")
        return Capabilities(scope, conn or scope)

    async def create_network(self, nid: str, options: dict[str, Any],
                             v4: list[IPAMData], v6: list[IPAMData]) -> None:
        await self._call("CreateNetwork", {
            "NetworkID": nid, "Options": options,
            "IPv4Data": [d.to_json() for d in v4], "IPv6Data": [d.to_json() for d in v6]})

    async def delete_network(self, nid: str) -> None:
        await self._call("DeleteNetwork", {"NetworkID": nid})

    async def create_endpoint(self, nid: str, eid: str, address: str, address6: str,
                              mac: str, options: dict[str, Any]) -> InterfaceOut | None:
        doc = await self._call("CreateEndpoint", {
            "NetworkID": nid, "EndpointID": eid,
            "Interface": {"Address": address, "AddressIPv6": address6, "MacAddress": mac},
            "Options": options})
        return parse_interface(doc)

    async def delete_endpoint(self, nid: str, eid: str) -> None:
        await self._call("DeleteEndpoint", {"NetworkID": nid, "EndpointID": eid})

    async def endpoint_oper_info(self, nid: str, eid: str) -> dict[str, Any]:
        doc = await self._call("EndpointOperInfo", {"NetworkID": nid, "EndpointID": eid})
        value = doc.get("Value")
        return value if isinstance(value, dict) else {}

    async def join(self, nid: str, eid: str, sandbox_key: str,
                   options: dict[str, Any]) -> JoinInfo:
        doc = await self._call("Join", {"NetworkID": nid, "EndpointID": eid,
                                        "SandboxKey": sandbox_key, "Options": options})
        return parse_join(doc)

    async def leave(self, nid: str, eid: str) -> None:
        await self._call("Leave", {"NetworkID": nid, "EndpointID": eid})

    async def program_external_connectivity(self, nid: str, eid: str,
                                            options: dict[str, Any]) -> None:
        await self._optional("ProgramExternalConnectivity", {
            "NetworkID": nid, "EndpointID": eid, "Options": options})

    async def revoke_external_connectivity(self, nid: str, eid: str) -> None:
        await self._optional("RevokeExternalConnectivity",
                             {"NetworkID": nid, "EndpointID": eid})

    async def _optional(self, verb: str, args: dict[str, Any]) -> None:
        try:
            await self._call(verb, args)
        except PluginCallError as e:
            if e.plugin_status != 404:          # "it is not mandatory yet to support this method"
                raise


async def driver(plugins: PluginGetter, name: str) -> RemoteDriver:
    """The remote driver `name` (NotFound when no such plugin is installed)."""
    return RemoteDriver(await plugins.get(name, KIND))
