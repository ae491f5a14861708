"""Networks made with plugins, as libnetwork does them: the address pools of a remote
IPAM (RequestPool, then the gateway and auxiliary addresses by RequestAddress, released
in the reverse order on failure and at removal) and a remote driver's CreateNetwork /
DeleteNetwork with the pools as IPAMData. networks.py calls these around its bridge
work; remote.py and ipam_remote.py speak the protocols."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import DockerError, Forbidden, InvalidParameter, SystemError_
from ..plugins import PluginCallError
from .ipam import Pool
from .ipam_remote import GATEWAY, REQUEST_ADDRESS_TYPE, RemoteIpam
from .ipam_remote import ipam as get_ipam
from .model import Network
from .remote import (OPT_ENABLE_IPV6, OPT_GENERIC, OPT_INTERNAL, IPAMData, PluginGetter,
                     RemoteDriver)
from .usernets import NetworkRequest

log = logging.getLogger("pydockerd.network")

DEFAULT_SPACES = ("LocalDefault", "GlobalDefault")   # the default IPAM's address spaces


@dataclass
class Grant:
    """One pool an IPAM plugin gave the network, and what was requested in it."""
    pool_id: str
    pool: Pool
    data: IPAMData
    aux: dict[str, str] = field(default_factory=dict)     # name -> address


@dataclass
class Grants:
    v4: Grant
    v6: Grant | None = None


async def _grant(ipam: RemoteIpam, space: str, req: NetworkRequest, v6: bool) -> Grant:
    subnet, rng, gateway, aux = (req.subnet6, req.ip_range6, req.gateway6,
                                 req.aux_addresses6) if v6 else \
        (req.subnet, req.ip_range, req.gateway, req.aux_addresses)
    g = await ipam.request_pool(space, subnet, rng, dict(req.ipam_options), v6)
    requested: list[str] = []
    try:
        gw: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None = None
        if GATEWAY in g.data:
            try:
                gw = ipaddress.ip_interface(g.data[GATEWAY])
            except ValueError as e:
                raise InvalidParameter(f"failed to parse gateway address ({g.data[GATEWAY]}) "
                                       f"returned by ipam driver: {e}") from None
        if gateway or gw is None:
            try:
                gw = await ipam.request_address(g.pool_id, gateway,
                                                {REQUEST_ADDRESS_TYPE: GATEWAY})
            except PluginCallError as e:
                raise SystemError_(f"failed to allocate gateway ({gateway}): "
                                   f"{e.message}") from None
            requested.append(str(gw.ip))
        out: dict[str, str] = {}
        data_aux: dict[str, str] = {}
        for key, value in aux.items():
            if ipaddress.ip_address(value) not in g.pool:
                raise Forbidden(f"auxiliary address: ({key}:{value}) must belong to the "
                                f"master pool: {g.pool}")
            try:
                a = await ipam.request_address(g.pool_id, value, None)
            except PluginCallError as e:
                raise SystemError_(f"failed to allocate secondary ip address ({key}:{value}): "
                                   f"{e.message}") from None
            requested.append(str(a.ip))
            out[key], data_aux[key] = str(a.ip), str(a)
        pool = Pool(g.pool, gw.ip, ipaddress.ip_network(rng) if rng else None,
                    frozenset(ipaddress.ip_address(a) for a in out.values()))
        return Grant(g.pool_id, pool, IPAMData(space, str(g.pool), str(gw), data_aux), out)
    except BaseException:
        await asyncio.shield(_release(ipam, g.pool_id, requested))
        raise


async def request_pools(ipam: RemoteIpam, req: NetworkRequest, scope: str) -> Grants:
    """The network's IPv4 pool (and IPv6 one with --ipv6) from the IPAM plugin, with the
    gateway (the plugin's `com.docker.network.gateway` or one requested) and the
    auxiliary addresses reserved, in the scope's default address space."""
    local, glob = await ipam.default_address_spaces()
    space = glob if scope == "global" else local
    v4 = await _grant(ipam, space, req, False)
    try:
        return Grants(v4, await _grant(ipam, space, req, True) if req.ipv6 else None)
    except BaseException:
        await asyncio.shield(_release(ipam, v4.pool_id,
                                      [str(v4.pool.gateway), *v4.aux.values()]))
        raise


async def _release(ipam: RemoteIpam, pool_id: str, addresses: list[str]) -> None:
    """ReleaseAddress each, then ReleasePool; failures are logged (libnetwork's too)."""
    for a in addresses:
        try:
            await ipam.release_address(pool_id, a)
        except DockerError as e:
            log.warning("releasing address %s of pool %s: %s", a, pool_id, e.message)
    try:
        await ipam.release_pool(pool_id)
    except DockerError as e:
        log.warning("releasing pool %s: %s", pool_id, e.message)


async def release_pools(plugins: PluginGetter, net: Network) -> None:
    """A removed network's pools back to its IPAM plugin (gateway, auxiliary addresses
    inside the pool, then the pool), as libnetwork's ipamRelease."""
    if net.ipam_driver == "default":
        return
    try:
        ipam = await get_ipam(plugins, net.ipam_driver)
    except DockerError as e:
        log.warning("cannot release the pools of network %s: %s", net.name, e.message)
        return
    for pool_id, gw, subnet, aux in ((net.pool_id, net.gateway, net.subnet, net.aux_addresses),
                                     (net.pool_id6, net.gateway6, net.subnet6,
                                      net.aux_addresses6)):
        if pool_id:
            inside = [a for a in aux.values()
                      if ipaddress.ip_address(a) in ipaddress.ip_network(subnet)]
            await _release(ipam, pool_id, [gw, *inside] if gw else inside)


async def undo_grants(ipam: RemoteIpam, grants: Grants) -> None:
    """Give back the pools of a network whose creation failed."""
    for g in (grants.v4, grants.v6):
        if g is not None:
            await _release(ipam, g.pool_id, [str(g.pool.gateway), *g.aux.values()])


def network_options(req: NetworkRequest) -> dict[str, Any]:
    """CreateNetwork's Options: the user's driver options as the generic data, as dockerd."""
    opts: dict[str, Any] = {OPT_ENABLE_IPV6: req.ipv6, OPT_GENERIC: dict(req.options)}
    if req.internal:
        opts[OPT_INTERNAL] = True
    return opts


def ipam_data(net: Network, scope: str, grants: Grants | None) -> tuple[list[IPAMData],
                                                                      list[IPAMData]]:
    """IPv4Data and IPv6Data of CreateNetwork: the plugin's grants, or the default
    IPAM's pools in its address space."""
    if grants is not None:
        return [grants.v4.data], [grants.v6.data] if grants.v6 else []
    space = DEFAULT_SPACES[1] if scope == "global" else DEFAULT_SPACES[0]

    def data(subnet: str, gateway: str, aux: dict[str, str]) -> IPAMData:
        plen = subnet.split("/")[1]
        return IPAMData(space, subnet, f"{gateway}/{plen}",
                        {k: f"{v}/{plen}" for k, v in aux.items()})
    v6 = [data(net.subnet6, net.gateway6, net.aux_addresses6)] if net.subnet6 else []
    return [data(net.subnet, net.gateway, net.aux_addresses)], v6


async def delete_network(driver: RemoteDriver, net: Network) -> None:
    """DeleteNetwork; as libnetwork, a driver error is logged and the network goes."""
    try:
        await driver.delete_network(net.id)
    except DockerError as e:
        log.warning("driver error deleting network %s : %s", net.name, e.message)
