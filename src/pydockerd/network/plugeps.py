"""Endpoints on plugins' networks, as libnetwork makes them.

Remote IPAM: the endpoint's addresses come from RequestAddress (with the MAC when the
plugin's capabilities ask for it) and go back by ReleaseAddress.

Remote driver: CreateEndpoint (the plugin may fill in what the request left empty, e.g.
an IPv6 address; changing what was given is libnetwork's "driver modified interface"
error), Join (the plugin names an interface it made in the host's namespace, SrcName,
which the daemon moves into the sandbox and names DstPrefix + the first free index, with
the endpoint's MAC, addresses, the plugin's gateway and static routes),
ProgramExternalConnectivity when the endpoint gives the container its default route,
and EndpointOperInfo, as dockerd does at join ("Updating join info failed" when it
fails). Leaving moves the interface back (named SrcName again), then Revoke..., Leave
and DeleteEndpoint. Whatever fails half way is undone in that order.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from typing import Any

from ..errors import DockerError, SystemError_
from ..plugins import PluginCallError
from ..util.cmd import run
from .bridge import IP
from .ipam import random_mac
from .ipam_remote import OPT_MAC, IpamCapabilities, RemoteIpam
from .ipam_remote import ipam as get_ipam
from .model import Endpoint, Network
from .remote import (OPT_EXPOSED_PORTS, OPT_PORTMAP, ROUTE_CONNECTED, InterfaceOut, JoinInfo,
                     RemoteDriver, driver)
from .sandbox import live_pin, nsenter
from .state import K_ENDPOINT, NetworkState

log = logging.getLogger("pydockerd.network")

async def _ipam(st: NetworkState, net: Network) -> tuple[RemoteIpam, IpamCapabilities]:
    ipam = await get_ipam(st.plugin_getter(net.ipam_driver), net.ipam_driver)
    caps = st.ipam_caps.get(net.ipam_driver)
    if caps is None:
        caps = st.ipam_caps[net.ipam_driver] = await ipam.capabilities()
    return ipam, caps


async def request_addresses(st: NetworkState, net: Network,
                            preferred: ipaddress.IPv4Address | None,
                            preferred6: ipaddress.IPv6Address | None, mac: str | None
                            ) -> tuple[ipaddress.IPv4Address, ipaddress.IPv6Address | None,
                                       str | None]:
    """The endpoint's IPv4 (and, on an IPv6 network, IPv6) address from the network's
    IPAM plugin, which the daemon then records as leases like its own; and its MAC: the
    one given, or (dockerd's GenerateRandomMAC) a new one when the plugin asks for it."""
    ipam, caps = await _ipam(st, net)
    if caps.requires_mac:
        mac = mac or random_mac()
    opts = {OPT_MAC: mac} if caps.requires_mac and mac else None
    a4 = await ipam.request_address(net.pool_id, str(preferred or ""), opts)
    try:
        if not isinstance(a4.ip, ipaddress.IPv4Address):
            raise PluginCallError(f"IpamDriver.RequestAddress: {a4} is not an IPv4 address")
        if not net.pool_id6:
            return a4.ip, None, mac
        a6 = await ipam.request_address(net.pool_id6, str(preferred6 or ""), opts)
    except BaseException:
        await asyncio.shield(_release(ipam, net.pool_id, str(a4.ip)))
        raise
    if not isinstance(a6.ip, ipaddress.IPv6Address):
        await asyncio.shield(_release(ipam, net.pool_id, str(a4.ip)))
        await asyncio.shield(_release(ipam, net.pool_id6, str(a6.ip)))
        raise PluginCallError(f"IpamDriver.RequestAddress: {a6} is not an IPv6 address")
    return a4.ip, a6.ip, mac


async def _release(ipam: RemoteIpam, pool_id: str, address: str) -> None:
    try:
        await ipam.release_address(pool_id, address)
    except DockerError as e:
        log.warning("releasing address %s of pool %s: %s", address, pool_id, e.message)


async def release_addresses(st: NetworkState, net: Network, ip: str, ip6: str) -> None:
    """ReleaseAddress of the endpoint's addresses (failures are logged)."""
    try:
        ipam, _ = await _ipam(st, net)
    except DockerError as e:
        log.warning("cannot release %s on network %s: %s", ip, net.name, e.message)
        return
    if ip and net.pool_id:
        await _release(ipam, net.pool_id, ip)
    if ip6 and net.pool_id6:
        await _release(ipam, net.pool_id6, ip6)


def _apply(ep: Endpoint, out: InterfaceOut) -> None:
    """What the plugin set in CreateEndpoint's answer: only what was left empty."""
    if out.mac and not ep.mac:
        ep.mac = out.mac
    elif out.mac:
        raise SystemError_(f"driver modified interface MAC address: endpoint interface MAC "
                           f"address present ({ep.mac}). Cannot be modified with "
                           f"{out.mac}.; rolled back")
    if out.address:
        raise SystemError_(f"driver modified interface address: endpoint interface IPv4 "
                           f"present ({ep.ip}/{ep.prefix_len}). Cannot be modified with "
                           f"({out.address}).; rolled back")
    if out.address6:
        if ep.ip6:
            raise SystemError_(f"driver modified interface address: endpoint interface "
                               f"IPv6 present ({ep.ip6}/{ep.prefix_len6}). Cannot be "
                               f"modified with ({out.address6}).; rolled back")
        iface = ipaddress.IPv6Interface(out.address6)
        ep.ip6, ep.prefix_len6 = str(iface.ip), iface.network.prefixlen


def _ifname(prefix: str, used: set[str]) -> str:
    prefix = prefix or "eth"
    return next(f"{prefix}{i}" for i in range(len(used) + 1) if f"{prefix}{i}" not in used)


async def _plumb(ep: Endpoint, info: JoinInfo, netns: str, default_route: bool,
                 used: set[str]) -> None:
    """Move the plugin's interface into the sandbox and configure it there."""
    ifname = _ifname(info.dst_prefix, used)
    await run([IP, "link", "set", "dev", info.src_name, "netns", netns])
    ep.src_name, ep.ifname = info.src_name, ifname
    batch = f"link set dev {info.src_name} name {ifname}\n"
    if ep.mac:
        batch += f"link set dev {ifname} address {ep.mac}\n"
    batch += f"addr add {ep.ip}/{ep.prefix_len} dev {ifname}\n"
    if ep.ip6:
        batch += f"addr add {ep.ip6}/{ep.prefix_len6} dev {ifname} nodad\n"
    batch += f"link set dev {ifname} up\n"
    if default_route and info.gateway:
        batch += f"route add default via {info.gateway} dev {ifname}\n"
    if default_route and info.gateway6:
        batch += f"route add default via {info.gateway6} dev {ifname}\n"
    for r in info.routes:
        if r.route_type == ROUTE_CONNECTED or not r.next_hop:
            batch += f"route add {r.destination} dev {ifname}\n"
        else:
            batch += f"route add {r.destination} via {r.next_hop} dev {ifname}\n"
    await nsenter(netns, [IP, "-batch", "-"], input=batch.encode())
    if not ep.mac:                  # the interface's own (inspect shows what it has)
        links = json.loads(await nsenter(netns, [IP, "-j", "link", "show", "dev", ifname]))
        ep.mac = str(links[0].get("address") or "") if links else ""


async def _unplumb(ep: Endpoint) -> None:
    """The interface back to the host's namespace under its SrcName (libnetwork's osl
    does the same before Leave); gone already is fine."""
    if not ep.src_name or not ep.netns_path or not live_pin(ep.netns_path):
        return
    batch = f"link set dev {ep.ifname} down\nlink set dev {ep.ifname} name {ep.src_name}\n" \
            f"link set dev {ep.src_name} netns /proc/{os.getpid()}/ns/net\n"
    try:
        await nsenter(ep.netns_path, [IP, "-batch", "-"], input=batch.encode())
    except DockerError as e:
        log.info("moving %s out of %s: %s", ep.ifname, ep.netns_path, e.message)


async def join(st: NetworkState, net: Network, ep: Endpoint, default_route: bool,
               options: dict[str, Any], used: set[str]) -> None:
    """CreateEndpoint, Join, the interface into the sandbox, ProgramExternalConnectivity
    (when this endpoint gives the default route), EndpointOperInfo; undone on failure.
    `used`: the interface names the sandbox has already."""
    drv = await driver(st.plugin_getter(net.driver), net.driver)
    ep.options = dict(options)
    # dockerd gives CreateEndpoint no ports on an internal network (Join has them)
    create_opts = {k: v for k, v in options.items()
                   if not net.internal or k not in (OPT_EXPOSED_PORTS, OPT_PORTMAP)}
    out = await drv.create_endpoint(net.id, ep.endpoint_id, f"{ep.ip}/{ep.prefix_len}",
                                    f"{ep.ip6}/{ep.prefix_len6}" if ep.ip6 else "",
                                    ep.mac, create_opts)
    try:
        if out is not None:
            _apply(ep, out)
        info = await drv.join(net.id, ep.endpoint_id, ep.netns_path, options)
        try:
            ep.gateway, ep.gateway6 = info.gateway, info.gateway6
            if info.src_name:
                await _plumb(ep, info, ep.netns_path, default_route, used)
            else:
                ep.ifname = ""
            # the plugin's gateway is the default route (even on an internal network, as
            # with dockerd); external connectivity is for non-internal networks only
            if default_route and not net.internal and (info.gateway or info.gateway6):
                ep.external = True
                await drv.program_external_connectivity(net.id, ep.endpoint_id, options)
            try:
                await drv.endpoint_oper_info(net.id, ep.endpoint_id)
            except PluginCallError as e:
                raise SystemError_(f"Updating join info failed: {e.message}") from None
        except BaseException:
            await asyncio.shield(_leave(drv, net, ep))
            raise
    except BaseException:
        await asyncio.shield(_delete_endpoint(drv, net, ep))
        raise


async def program_external(st: NetworkState, net: Network, ep: Endpoint) -> None:
    """ProgramExternalConnectivity of an endpoint that took over the default route (a
    failure is logged, as libnetwork's sbLeave does); recorded."""
    if ep.external:
        return
    try:
        drv = await driver(st.plugin_getter(net.driver), net.driver)
        await drv.program_external_connectivity(net.id, ep.endpoint_id, ep.options)
    except DockerError as e:
        log.warning("ProgramExternalConnectivity of %s: %s", ep.endpoint_id[:12], e.message)
        return
    ep.external = True
    st.store.put(K_ENDPOINT, ep.key, ep.to_doc())


async def _leave(drv: RemoteDriver, net: Network, ep: Endpoint) -> None:
    await _unplumb(ep)
    if ep.external:
        try:
            await drv.revoke_external_connectivity(net.id, ep.endpoint_id)
        except DockerError as e:
            log.warning("RevokeExternalConnectivity of %s: %s", ep.endpoint_id[:12], e.message)
        ep.external = False
    try:
        await drv.leave(net.id, ep.endpoint_id)
    except DockerError as e:
        log.warning("leaving network %s: %s", net.name, e.message)


async def _delete_endpoint(drv: RemoteDriver, net: Network, ep: Endpoint) -> None:
    try:
        await drv.delete_endpoint(net.id, ep.endpoint_id)
    except DockerError as e:
        log.warning("deleting endpoint %s of network %s: %s", ep.endpoint_id[:12],
                    net.name, e.message)


async def leave(st: NetworkState, net: Network, ep: Endpoint) -> None:
    """Leave and DeleteEndpoint (after RevokeExternalConnectivity when it was programmed);
    a plugin that fails or is gone is logged: the container leaves all the same."""
    try:
        drv = await driver(st.plugin_getter(net.driver), net.driver)
    except DockerError as e:
        log.warning("leaving network %s: %s", net.name, e.message)
        await _unplumb(ep)
        return
    await _leave(drv, net, ep)
    await _delete_endpoint(drv, net, ep)
