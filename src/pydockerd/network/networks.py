"""User-defined networks: create (checked by usernets.py, a bridge and chains of its
own), remove (refused while endpoints are attached) and prune."""
from __future__ import annotations

import asyncio
import ipaddress

from ..errors import Conflict, Forbidden, NotFound, Unavailable
from ..models import NetworkCreateRequest
from ..util.ids import new_id, now_rfc3339
from . import bridge as br
from . import filters as nfilters
from . import lifecycle, usernets
from .model import PREDEFINED, Network
from .state import K_NETWORK, NetworkState


async def create_network(st: NetworkState, body: NetworkCreateRequest) -> Network:
    req = usernets.parse_request(body)
    async with st.lock:
        if any(n.name == req.name for n in st.networks.values()) \
                or req.name in PREDEFINED:
            raise Conflict(f"network with name {req.name} already exists")
        ours = [ipaddress.IPv4Network(n.subnet) for n in st.networks.values()
                if n.subnet]
        pool = usernets.plan_pool(req, await br.host_networks(), ours, st.opts.pools4)
        pool6 = None
        if req.ipv6:
            if not st.opts.pools6 and not req.subnet6:
                raise Unavailable("could not find an available, non-overlapping IPv6 "
                                  "address pool among the defaults to assign to the network")
            ours6 = [ipaddress.IPv6Network(n.subnet6) for n in st.networks.values()
                     if n.subnet6]
            pool6 = usernets.plan_pool6(req, st.opts.pools6, await br.host_networks6(), ours6)
        nid = new_id()
        dev = req.options.get(usernets.OPT_BRIDGE_NAME) or f"br-{nid[:12]}"
        if dev in st.bridge_devices() or await br.link_exists(dev):
            raise Conflict(f"bridge device {dev} already exists")
        req.mtu(st.opts.mtu)
        net = Network(nid, req.name, "bridge", now_rfc3339(), subnet=str(pool.subnet),
                      gateway=str(pool.gateway),
                      ip_range=str(pool.ip_range) if pool.ip_range else "",
                      aux_addresses=dict(req.aux_addresses),
                      options=dict(req.options), labels=dict(req.labels),
                      internal=req.internal, attachable=req.attachable, bridge_name=dev)
        if pool6 is not None:
            net.enable_ipv6 = True
            net.subnet6, net.gateway6 = str(pool6.subnet), str(pool6.gateway)
            net.ip_range6 = str(pool6.ip_range) if pool6.ip_range else ""
            net.aux_addresses6 = dict(req.aux_addresses6)
        st.store.require_space(f"create network {req.name}")
        st.networks[net.id] = net
        st.pools[net.id] = pool
        if pool6 is not None:
            st.pools6[net.id] = pool6
        try:
            await lifecycle.bring_up_user(st, net)
            st.store.put(K_NETWORK, net.id, net.to_doc())
        except BaseException:
            await asyncio.shield(lifecycle.tear_down_user(st, net))
            raise
        await lifecycle.refresh_isolation(st, skip=net.id)
    st.events.publish("network", "create", net.id, {"name": net.name, "type": "bridge"})
    return net


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
        dev = st.device(net)
        await lifecycle.tear_down_user(st, net)
        await lifecycle.refresh_isolation(st)
        for hook in st.bridge_removed:
            await hook(dev)
    st.events.publish("network", "destroy", net.id, {"name": net.name, "type": "bridge"})


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
