"""libnetwork's remote IPAM: a legacy plugin implementing `IpamDriver` (see
moby/libnetwork docs/ipam.md and ipams/remote/remote.go). This module speaks the
protocol; plugnets.py asks for a network's pools (and its gateway and auxiliary
addresses), plugeps.py for the endpoints' addresses.

As libnetwork: a plugin without GetCapabilities is used without capabilities; an answer
with a non-empty `Err` is `remote: <Err>`; RequestAddress must return an address
("no address returned" otherwise).
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from ..plugins import PluginCallError
from .remote import LibnetworkPlugin, PluginGetter, parse_cidr

KIND = "IpamDriver"
REQUEST_ADDRESS_TYPE = "RequestAddressType"
GATEWAY = "com.docker.network.gateway"             # netlabel.Gateway
OPT_MAC = "com.docker.network.endpoint.macaddress"  # netlabel.MacAddress

log = logging.getLogger("pydockerd.network")

IPIface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class IpamCapabilities:
    requires_mac: bool = False


@dataclass(frozen=True)
class PoolGrant:
    pool_id: str
    pool: IPNet
    data: dict[str, str]


class RemoteIpam(LibnetworkPlugin):
    """The IpamDriver calls of one plugin."""
    kind = KIND

    async def capabilities(self) -> IpamCapabilities:
        """As libnetwork, a plugin that cannot answer is used without capabilities."""
        try:
            doc = await self._call("GetCapabilities", None)
        except PluginCallError as e:
            log.info("remote ipam driver %s does not support capabilities: %s",
                     self.name, e.message)
            return IpamCapabilities()
        return IpamCapabilities(bool(doc.get("RequiresMACAddress")))

    async def default_address_spaces(self) -> tuple[str, str]:
        doc = await self._call("GetDefaultAddressSpaces", None)
        local, glob = doc.get("LocalDefaultAddressSpace"), doc.get("GlobalDefaultAddressSpace")
        return (local if isinstance(local, str) else "", glob if isinstance(glob, str) else "")

    async def request_pool(self, space: str, pool: str, sub_pool: str,
                           options: dict[str, str], v6: bool) -> PoolGrant:
        doc = await self._call("RequestPool", {"AddressSpace": space, "Pool": pool,
                                               "SubPool": sub_pool, "Options": options,
                                               "V6": v6})
        pool_id, text, data = doc.get("PoolID"), doc.get("Pool"), doc.get("Data")
        net = parse_cidr(text if isinstance(text, str) else "").network
        if net.version != (6 if v6 else 4):
            raise PluginCallError(f"IpamDriver.RequestPool: pool {net} is not an IPv"
                                  f"{6 if v6 else 4} pool")
        return PoolGrant(pool_id if isinstance(pool_id, str) else "", net,
                         {str(k): str(v) for k, v in data.items()}
                         if isinstance(data, dict) else {})

    async def release_pool(self, pool_id: str) -> None:
        await self._call("ReleasePool", {"PoolID": pool_id})

    async def request_address(self, pool_id: str, address: str = "",
                              options: dict[str, str] | None = None) -> IPIface:
        doc = await self._call("RequestAddress", {"PoolID": pool_id, "Address": address,
                                                  "Options": options})
        text = doc.get("Address")
        if not isinstance(text, str) or not text:
            raise PluginCallError("no address returned")
        return parse_cidr(text)

    async def release_address(self, pool_id: str, address: str) -> None:
        await self._call("ReleaseAddress", {"PoolID": pool_id, "Address": address})


async def ipam(plugins: PluginGetter, name: str) -> RemoteIpam:
    """The remote IPAM `name` (NotFound when no such plugin is installed)."""
    return RemoteIpam(await plugins.get(name, KIND))
