"""User-defined networks: create (checked by usernets.py; a bridge and chains of its
own, or a network plugin's CreateNetwork; pools of the default IPAM or of an IPAM plugin,
see plugnets.py), remove (refused while endpoints are attached) and prune."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING

from ..errors import Conflict, DockerError, Forbidden, NotFound, SystemError_, Unavailable
from ..models import NetworkCreateRequest
from ..util.ids import new_id, now_rfc3339
from . import bridge as br
from . import filters as nfilters
from . import lifecycle, remote, usernets
from .ipam_remote import RemoteIpam
from .ipam_remote import ipam as get_ipam
from .model import PREDEFINED, Network
from .state import K_NETWORK, NetworkState
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    from . import plugnets
else:   # networks of a network or IPAM plugin: loaded with the first (issue 10: idle memory)
    plugnets = lazy_import("pydockerd.network.plugnets")

log = logging.getLogger("pydockerd.network")

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
                 'join" to connect this node to swarm and try again.')


async def create_network(st: NetworkState, body: NetworkCreateRequest) -> Network:
    req = usernets.parse_request(body)
    driver, scope = None, "local"
    if req.driver != "bridge":
        driver = await remote.driver(st.plugin_getter(req.driver), req.driver)
        if req.driver not in st.driver_caps:
            st.driver_caps[req.driver] = await driver.capabilities()
        scope = st.driver_caps[req.driver].scope
        if scope == "global":        # needs swarm's (or a cluster store's) control plane
            raise SystemError_(NOT_A_MANAGER)
    ipam = None
    if req.ipam_driver != "default":
        ipam = await get_ipam(st.plugin_getter(req.ipam_driver), req.ipam_driver)
        if req.ipam_driver not in st.ipam_caps:
            st.ipam_caps[req.ipam_driver] = await ipam.capabilities()
    async with st.lock:
        if any(n.name == req.name for n in st.networks.values()) \
                or req.name in PREDEFINED:
            raise Conflict(f"network with name {req.name} already exists")
        nid = new_id()
        dev = ""
        if driver is None:
            dev = req.options.get(usernets.OPT_BRIDGE_NAME) or f"br-{nid[:12]}"
            if dev in st.bridge_devices() or await br.link_exists(dev):
                raise Conflict(f"bridge device {dev} already exists")
            req.mtu(st.opts.mtu)
        grants = await plugnets.request_pools(ipam, req, scope) if ipam is not None \
            else None
        try:
            net = await _plan(st, req, nid, grants)
        except BaseException:
            if ipam is not None and grants is not None:
                await asyncio.shield(plugnets.undo_grants(ipam, grants))
            raise
        net.driver, net.scope, net.bridge_name = req.driver, scope, dev
        net.ipam_driver, net.ipam_options = req.ipam_driver, dict(req.ipam_options)
        net.ipam_options_set = req.ipam_options_set
        net.user_subnet = req.user_subnet
        if grants is not None:
            net.pool_id = grants.v4.pool_id
            net.pool_id6 = grants.v6.pool_id if grants.v6 else ""
        await _bring_up(st, net, req, driver, ipam, grants)
    st.events.publish("network", "create", net.id, {"name": net.name, "type": net.driver})
    return net


async def _plan(st: NetworkState, req: usernets.NetworkRequest, nid: str,
                grants: plugnets.Grants | None) -> Network:
    """The network's pools: the IPAM plugin's, or planned by the default IPAM."""
    if grants is not None:
        pool, pool6 = grants.v4.pool, grants.v6.pool if grants.v6 else None
        aux, aux6 = grants.v4.aux, grants.v6.aux if grants.v6 else {}
    else:
        ours = [ipaddress.IPv4Network(n.subnet) for n in st.networks.values() if n.subnet]
        pool = usernets.plan_pool(req, await br.host_networks(), ours, st.opts.pools4)
        pool6 = None
        if req.ipv6:
            if not st.opts.pools6 and not req.subnet6:
                raise Unavailable("could not find an available, non-overlapping IPv6 "
                                  "address pool among the defaults to assign to the network")
            ours6 = [ipaddress.IPv6Network(n.subnet6) for n in st.networks.values()
                     if n.subnet6]
            pool6 = usernets.plan_pool6(req, st.opts.pools6, await br.host_networks6(), ours6)
        aux, aux6 = req.aux_addresses, req.aux_addresses6
    net = Network(nid, req.name, "bridge", now_rfc3339(), subnet=str(pool.subnet),
                  gateway=str(pool.gateway),
                  ip_range=str(pool.ip_range) if pool.ip_range else "",
                  aux_addresses=dict(aux), options=dict(req.options),
                  labels=dict(req.labels), internal=req.internal, attachable=req.attachable)
    if pool6 is not None:
        net.enable_ipv6 = True
        net.subnet6, net.gateway6 = str(pool6.subnet), str(pool6.gateway)
        net.ip_range6 = str(pool6.ip_range) if pool6.ip_range else ""
        net.aux_addresses6 = dict(aux6)
        st.pools6[net.id] = pool6
    st.pools[net.id] = pool
    return net


async def _bring_up(st: NetworkState, net: Network, req: usernets.NetworkRequest,
                    driver: remote.RemoteDriver | None, ipam: RemoteIpam | None,
                    grants: plugnets.Grants | None) -> None:
    """The bridge and its rules, or the remote driver's CreateNetwork; then the record.
    Whatever fails undoes it all (pools given back to the IPAM plugin too)."""
    try:
        st.store.require_space(f"create network {req.name}")
        st.networks[net.id] = net
        if driver is None:
            await lifecycle.bring_up_user(st, net)
        else:
            v4, v6 = plugnets.ipam_data(net, net.scope, grants)
            await driver.create_network(net.id, plugnets.network_options(req), v4, v6)
        try:
            st.store.put(K_NETWORK, net.id, net.to_doc())
        except BaseException:
            if driver is not None:
                await asyncio.shield(plugnets.delete_network(driver, net))
            raise
    except BaseException:
        await asyncio.shield(lifecycle.tear_down_user(st, net))
        if ipam is not None and grants is not None:
            await asyncio.shield(plugnets.undo_grants(ipam, grants))
        raise
    if driver is None:
        await lifecycle.refresh_isolation(st, skip=net.id)


async def remove_network(st: NetworkState, name_or_id: str) -> None:
    net = st.get(name_or_id)
    if net.predefined:
        raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
    async with st.lock:
        if st.attached(net.id):
            raise Forbidden(f"error while removing network: network {net.name} has "
                            "active endpoints")
        if net.id not in st.networks:
            raise NotFound(f"network {name_or_id} not found")
        if net.driver != "bridge":
            await _remove_plugin_network(st, net)
        else:
            dev = st.device(net)
            await lifecycle.tear_down_user(st, net)
            await plugnets.release_pools(st.plugin_getter(net.ipam_driver), net)
            await lifecycle.refresh_isolation(st)
            for hook in st.bridge_removed:
                await hook(dev)
    st.events.publish("network", "destroy", net.id, {"name": net.name, "type": net.driver})


async def _remove_plugin_network(st: NetworkState, net: Network) -> None:
    """As libnetwork: the pools go back to the IPAM first, then DeleteNetwork (whose
    failure is logged: the network goes all the same)."""
    await plugnets.release_pools(st.plugin_getter(net.ipam_driver), net)
    try:
        driver = await remote.driver(st.plugin_getter(net.driver), net.driver)
    except DockerError as e:
        log.warning("driver error deleting network %s : %s", net.name, e.message)
    else:
        await plugnets.delete_network(driver, net)
    await lifecycle.tear_down_user(st, net)


async def prune(st: NetworkState, filters: dict[str, list[str]] | None = None) -> list[str]:
    """Remove the user-defined networks without endpoints; their names."""
    removed: list[str] = []
    for net in nfilters.prunable(list(st.networks.values()), filters or {}):
        if st.attached(net.id):
            continue
        try:
            await remove_network(st, net.id)
        except (Forbidden, NotFound):
            continue
        removed.append(net.name)
    return removed
