"""Containers on networks: a sandbox (network namespace pinned at a file) per
container, and an endpoint per network it joins (lease, veth pair, address and
routes, embedded DNS on user networks); disconnect and release undo them, idempotently.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, DockerError, Forbidden, InvalidParameter
from ..models import EndpointSettings
from ..util.ids import new_id
from . import sandbox, usernets
from .ipam import IPAddr, mac_for_ip, normalize_mac, parse_ip6
from .model import Endpoint, Network, PortOptions, endpoint_key, lease_key
from .remote import OPT_EXPOSED_PORTS, OPT_PORTMAP
from .bridge import IP
from .state import K_ENDPOINT, K_LEASE, NetworkState
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    from . import plugeps
else:   # endpoints on a network plugin's networks: loaded with the first (idle memory)
    plugeps = lazy_import("pydockerd.network.plugeps")

log = logging.getLogger("pydockerd.network")


async def create_sandbox(st: NetworkState, container_id: str) -> str:
    """A fresh network namespace for the container, pinned at a file; returns its path."""
    path = st.netns_path(container_id)
    if os.path.lexists(path):               # a leftover from a crash: never reuse it
        await asyncio.to_thread(sandbox.remove_netns, path)
    await sandbox.create_netns(path, st.ids)
    return path


async def connect(st: NetworkState, container_id: str, netns_path: str,
                  network: str = "bridge", settings: EndpointSettings | None = None,
                  ports: PortOptions | None = None) -> Endpoint:
    """Join the network with the client's EndpointSettings: IPAMConfig.IPv4Address and
    IPv6Address, Aliases and MacAddress are applied (DriverOpts and Links are kept by the
    caller). A network with IPv6 gives the endpoint an IPv6 address too."""
    es = settings or EndpointSettings()
    ip = es.IPAMConfig.IPv4Address if es.IPAMConfig else None
    ip6 = es.IPAMConfig.IPv6Address if es.IPAMConfig else None
    aliases = list(es.Aliases or ())
    net = st.get(network)
    if net.driver in ("host", "null"):
        raise InvalidParameter("container cannot be disconnected from host network or "
                               "connected to host network" if net.driver == "host" else
                               f"container cannot be connected to network {net.name}")
    if (ip or ip6) and net.predefined:
        raise InvalidParameter("user specified IP address is supported on user defined "
                               "networks only")
    if (ip or ip6) and (net.remote or net.ipam_driver != "default") and not net.user_subnet:
        raise InvalidParameter("user specified IP address is supported only when "
                               "connecting to networks with user configured subnets")
    if aliases and net.predefined:
        raise InvalidParameter("network-scoped alias is supported only for containers in "
                               "user defined networks")
    if endpoint_key(container_id, net.id) in st.endpoints_by_key:
        raise Forbidden(f"endpoint with name {st.name_of(container_id)} already exists "
                        f"in network {net.name}")
    mac = normalize_mac(es.MacAddress) if es.MacAddress else None
    preferred = None
    if ip:
        try:
            preferred = ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidParameter(f"invalid IPv4 address: {ip}") from None
    preferred6 = parse_ip6(ip6) if ip6 else None
    pool6 = st.pools6.get(net.id)
    if preferred6 is not None and (pool6 is None or preferred6 not in pool6.subnet):
        raise InvalidParameter(f"invalid endpoint settings:\nno configured subnet contains "
                               f"IP address {preferred6}")
    mine = st.endpoints(container_id)
    used_if = {e.ifname for e in mine}
    ifname = next(f"eth{i}" for i in range(len(mine) + 1) if f"eth{i}" not in used_if)
    # the default route goes through the first network that has one: a bridge that is
    # not internal, a plugin's network whose Join gave a gateway
    has_gw = gateway_holder(st, mine) is not None
    if net.ipam_driver != "default":
        preferred, preferred6, mac = await plugeps.request_addresses(st, net, preferred,
                                                                     preferred6, mac)
    try:
        ep = reserve(st, container_id, net, netns_path, mac, preferred, ifname,
                     list(dict.fromkeys(aliases)), preferred6)
    except BaseException:
        if net.ipam_driver != "default":
            await asyncio.shield(plugeps.release_addresses(
                st, net, str(preferred), str(preferred6 or "")))
        raise
    joined = False
    try:
        if net.remote:
            await plugeps.join(st, net, ep, not has_gw,
                               endpoint_options(es, ports or PortOptions()), used_if)
            joined = True
            st.store.put(K_ENDPOINT, ep.key, ep.to_doc())
        else:
            await _plumb_veth(st, net, ep, ifname, has_gw)
        if not net.predefined:
            await st.dns.serve(container_id, netns_path)
    except BaseException:
        await asyncio.shield(teardown(st, ep, joined=joined))
        raise
    st.events.publish("network", "connect", net.id,
                      {"container": container_id, "name": net.name, "type": net.driver})
    return ep


async def _plumb_veth(st: NetworkState, net: Network, ep: Endpoint, ifname: str,
                      has_gw: bool) -> None:
    """A bridge network's endpoint: a veth pair from its bridge into the sandbox."""
    await sandbox.create_veth(ep.host_veth, st.device(net), ep.netns_path,
                              usernets.NetworkRequest(net.name, options=dict(
                                  net.options)).mtu(st.opts.mtu), ep.mac, ifname)
    await sandbox.configure_eth0(ep.netns_path, f"{ep.ip}/{ep.prefix_len}",
                                 None if net.internal or has_gw else ep.gateway,
                                 ifname,
                                 f"{ep.ip6}/{ep.prefix_len6}" if ep.ip6 else None,
                                 None if net.internal or has_gw else ep.gateway6)


def endpoint_options(es: EndpointSettings, ports: PortOptions) -> dict[str, Any]:
    """The generic options a remote driver gets with CreateEndpoint and Join: the
    container's exposed and published ports and the endpoint's DriverOpts."""
    opts: dict[str, Any] = {OPT_EXPOSED_PORTS: [p.to_json() for p in ports.exposed],
                            OPT_PORTMAP: [b.to_json() for b in ports.bindings]}
    opts.update(es.DriverOpts or {})
    return opts


def reserve(st: NetworkState, container_id: str, net: Network, netns_path: str,
            mac: str | None, preferred: ipaddress.IPv4Address | None = None,
            ifname: str = "eth0", aliases: list[str] | None = None,
            preferred6: ipaddress.IPv6Address | None = None) -> Endpoint:
    """Lease the addresses and record the endpoint (no await: atomic on the loop). On a
    network whose IPAM is a plugin, `preferred`/`preferred6` are what the plugin gave:
    taken as they are (the plugin's rules, not the default IPAM's, apply)."""
    pool = st.pools[net.id]
    used = st.leases.setdefault(net.id, set())
    pool6 = st.pools6.get(net.id)
    addr: IPAddr
    addr6: IPAddr | None
    if net.ipam_driver != "default" and preferred is not None:
        for given in (preferred, preferred6):
            if given is not None and given in used:
                raise Conflict(f"Address already in use: {given}")
        addr, addr6 = preferred, preferred6 if pool6 is not None else None
    else:
        addr = pool.allocate(used, preferred)
        addr6 = pool6.allocate(used, preferred6) if pool6 is not None else None
    veths = {e.host_veth for e in st.endpoints_by_key.values()}
    veth = "veth" + os.urandom(4).hex()[:7]
    while veth in veths:
        veth = "veth" + os.urandom(4).hex()[:7]
    if net.remote:
        veth = ""                       # the plugin makes the interface
    ep = Endpoint(net.id, new_id(), container_id, str(addr), pool.subnet.prefixlen,
                  # a remote driver's interface keeps its own MAC unless one is given
                  str(pool.gateway), mac or ("" if net.remote else mac_for_ip(addr)),
                  veth, netns_path, ifname,
                  list(aliases or []))
    if addr6 is not None and pool6 is not None:
        ep.ip6, ep.prefix_len6, ep.gateway6 = str(addr6), pool6.subnet.prefixlen, \
            str(pool6.gateway)
    with st.store.transaction():
        for a in (ep.ip, ep.ip6):
            if a:
                st.store.put(K_LEASE, lease_key(net.id, a),
                             {"network_id": net.id, "ip": a, "container_id": container_id,
                              "endpoint_id": ep.endpoint_id})
        st.store.put(K_ENDPOINT, ep.key, ep.to_doc())
    used.add(addr)
    if addr6 is not None:
        used.add(addr6)
    st.endpoints_by_key[ep.key] = ep
    return ep


async def teardown(st: NetworkState, ep: Endpoint, joined: bool = True) -> None:
    """Undo an endpoint: its veth (or the remote driver's Leave and DeleteEndpoint when
    it `joined`), its leases (and the IPAM plugin's addresses), its record."""
    net = st.networks.get(ep.network_id)
    if net is not None and net.remote and joined:
        await plugeps.leave(st, net, ep)
    if ep.host_veth:
        await sandbox.delete_veth(ep.host_veth)
    if net is not None and net.ipam_driver != "default":
        await plugeps.release_addresses(st, net, ep.ip, ep.ip6)
    with st.store.transaction():
        st.release_lease(ep.network_id, ep.ip)
        if ep.ip6:
            st.release_lease(ep.network_id, ep.ip6)
        st.store.delete(K_ENDPOINT, ep.key)
    st.endpoints_by_key.pop(ep.key, None)


def gateway_holder(st: NetworkState, eps: list[Endpoint]) -> Endpoint | None:
    """The endpoint giving the container its default route (libnetwork's gateway
    endpoint): the first, in connection order, with a gateway on a bridge that is not
    internal or on a plugin's network."""
    for e in eps:
        n = st.networks.get(e.network_id)
        if n is not None and (e.gateway or e.gateway6) and (n.remote or not n.internal):
            return e
    return None


async def _take_default_route(st: NetworkState, ep: Endpoint) -> None:
    """The endpoint gives the default route now: routes via its gateway(s), and (a
    plugin's network that is not internal) ProgramExternalConnectivity."""
    net = st.networks.get(ep.network_id)
    if net is None or not ep.ifname or not os.path.exists(ep.netns_path):
        return
    batch = "".join(f"route replace default via {gw} dev {ep.ifname}\n"
                    for gw in (ep.gateway, ep.gateway6) if gw)
    try:
        await sandbox.nsenter(ep.netns_path, [IP, "-batch", "-"], input=batch.encode())
    except DockerError as e:
        log.warning("default route via %s of %s: %s", ep.ifname, ep.container_id[:12],
                    e.message)
    if net.remote and not net.internal:
        await plugeps.program_external(st, net, ep)


async def disconnect(st: NetworkState, container_id: str, network: str | None = None) -> None:
    """Delete the container's veth(s) and release their leases; idempotent. When the
    network left gave the default route, the next one that can takes it over (with
    external connectivity), as libnetwork's sbLeave re-evaluates its gateway endpoint."""
    before = gateway_holder(st, st.endpoints(container_id)) if network is not None else None
    for ep in st.endpoints(container_id):
        if network is not None and ep.network_id != st.get(network).id:
            continue
        await teardown(st, ep)
    if before is not None and before.key not in st.endpoints_by_key:
        after = gateway_holder(st, st.endpoints(container_id))
        if after is not None:
            await _take_default_route(st, after)
        net = st.networks.get(ep.network_id)
        st.events.publish("network", "disconnect", ep.network_id,
                          {"container": container_id, "name": net.name if net else "",
                           "type": net.driver if net else ""})


async def release_sandbox(st: NetworkState, container_id: str) -> None:
    """disconnect() plus unmount and delete the namespace file; idempotent."""
    await st.dns.stop_serving(container_id)
    await disconnect(st, container_id)
    await asyncio.to_thread(sandbox.remove_netns, st.netns_path(container_id))
