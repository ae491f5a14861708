"""The networks' life with the daemon: at start the predefined networks, the default
bridge (found again or created, with --bip/--fixed-cidr) and the user networks'
bridges and iptables chains; reconcile() after a restart; stop() and cleanup().
"""
from __future__ import annotations

import ipaddress
import logging
import os
from typing import Collection

from ..errors import DockerError, InvalidParameter
from ..util.ids import new_id, now_rfc3339
from . import bridge as br
from . import endpoints, sandbox, usernets
from .ipam import Pool, choose_default_subnet, choose_default_subnet6, parse_network
from .model import Endpoint, Network
from .state import K_ENDPOINT, K_LEASE, K_NETWORK, NetworkState

log = logging.getLogger("pydockerd.network")


async def start(st: NetworkState) -> None:
    stored = {d["name"]: Network.from_doc(d) for d in st.store.all(K_NETWORK).values()}
    for name, driver in (("host", "host"), ("none", "null")):
        net = stored.get(name) or Network(new_id(), name, driver, now_rfc3339())
        st.store.put(K_NETWORK, net.id, net.to_doc())
        st.networks[net.id] = net
    users = [n for n in stored.values() if not n.predefined]
    for net in users:
        st.networks[net.id] = net
        st.pools[net.id] = Pool(ipaddress.IPv4Network(net.subnet),
                                ipaddress.IPv4Address(net.gateway),
                                parse_network(net.ip_range) if net.ip_range else None,
                                frozenset(ipaddress.IPv4Address(a)
                                          for a in net.aux_addresses.values()))
        if net.enable_ipv6 and net.subnet6:
            st.pools6[net.id] = pool6_of(net)
    if st.opts.bridge_name != "none":
        await _start_bridge(st, stored.get("bridge"))
    for net in users:
        if net.driver != "bridge":        # a plugin's network: the plugin keeps it
            continue
        try:
            await bring_up_user(st, net)
        except Exception:  # noqa: BLE001 - one broken network must not stop the daemon
            log.exception("could not restore network %s", net.name)
    for doc in st.store.all(K_ENDPOINT).values():
        ep = Endpoint.from_doc(doc)
        st.endpoints_by_key[ep.key] = ep
    for doc in st.store.all(K_LEASE).values():
        st.leases.setdefault(doc["network_id"], set()).add(ipaddress.ip_address(doc["ip"]))


def pool6_of(net: Network) -> Pool:
    return Pool(ipaddress.IPv6Network(net.subnet6), ipaddress.IPv6Address(net.gateway6),
                ipaddress.IPv6Network(net.ip_range6) if net.ip_range6 else None,
                frozenset(ipaddress.IPv6Address(a) for a in net.aux_addresses6.values()))


async def _default_pool6(st: NetworkState, prev: Network | None) -> Pool | None:
    """The default bridge's IPv6 subnet with --ipv6: --fixed-cidr-v6 (its first address
    the gateway, as moby 28's IPAM), else the one it had, else a /64 of the daemon's
    ULA prefix (moby 27+)."""
    if not st.opts.ipv6:
        return None
    if st.opts.fixed_cidr_v6 is not None:
        net6 = st.opts.fixed_cidr_v6
        return Pool(net6, net6[1], net6)
    if prev is not None and prev.subnet6:
        return Pool(ipaddress.IPv6Network(prev.subnet6), ipaddress.IPv6Address(prev.gateway6))
    if not st.opts.pools6:
        raise InvalidParameter("--ipv6 needs --fixed-cidr-v6 here (no default IPv6 pool)")
    ours = [ipaddress.IPv6Network(n.subnet6) for n in st.networks.values() if n.subnet6]
    net6 = choose_default_subnet6(st.opts.pools6, [*await br.host_networks6(), *ours])
    return Pool(net6, net6[1])


async def _start_bridge(st: NetworkState, prev: Network | None) -> None:
    name = st.opts.bridge_name
    exists, address = await br.bridge_address(name)
    same_device = prev is not None and prev.options.get(
        "com.docker.network.bridge.name") == name
    owned = same_device and prev is not None and prev.bridge_created
    if exists:
        if address is None:
            raise InvalidParameter(f"bridge {name} exists but has no IPv4 address; "
                                   "pydockerd does not reconfigure a bridge it did not create")
        if st.opts.bip is not None and st.opts.bip != address:
            log.warning("bridge %s already has address %s; --bip %s ignored",
                        name, address, st.opts.bip)
        if owned:
            await br.set_up(name)
    else:
        address = st.opts.bip
        if address is None and prev is not None and prev.subnet:
            address = ipaddress.IPv4Interface(f"{prev.gateway}/{prev.subnet.split('/')[1]}")
            if any(address.network.overlaps(n) for n in await br.host_networks()
                   if n.prefixlen > 0):
                address = None
        if address is None:
            subnet = choose_default_subnet(await br.host_networks(), st.opts.pools4)
            address = ipaddress.IPv4Interface(f"{subnet[1]}/{subnet.prefixlen}")
        await br.create_bridge(name, address, st.opts.mtu)
        owned = True
    pool = Pool(address.network, address.ip, st.opts.fixed_cidr)
    pool6 = await _default_pool6(st, prev)
    if pool6 is not None:
        if owned:
            await br.add_address6(name, ipaddress.IPv6Interface(
                f"{pool6.gateway}/{pool6.subnet.prefixlen}"))
        else:
            log.warning("bridge %s is not pydockerd's: give it the address %s/%d for IPv6",
                        name, pool6.gateway, pool6.subnet.prefixlen)
    net = Network(prev.id if prev else new_id(), "bridge", "bridge",
                  prev.created if prev else now_rfc3339(),
                  subnet=str(address.network), gateway=str(address.ip),
                  ip_range=str(st.opts.fixed_cidr) if st.opts.fixed_cidr else "",
                  options=_bridge_options(st), bridge_created=owned,
                  enable_ipv6=pool6 is not None)
    if pool6 is not None:
        net.subnet6, net.gateway6 = str(pool6.subnet), str(pool6.gateway)
        net.ip_range6 = str(pool6.ip_range) if pool6.ip_range else ""
        st.pools6[net.id] = pool6
    st.store.put(K_NETWORK, net.id, net.to_doc())
    st.networks[net.id] = net
    st.pools[net.id] = pool
    if st.opts.ip_forward:
        await br.enable_ip_forward()
        if pool6 is not None:
            await br.enable_ip6_forward()
    if st.opts.iptables:
        if not st.opts.icc:
            await br.enable_bridge_netfilter()
        await br.install_rules(st.rules(net))


def _bridge_options(st: NetworkState) -> dict[str, str]:
    return {
        "com.docker.network.bridge.default_bridge": "true",
        "com.docker.network.bridge.enable_icc": str(st.opts.icc).lower(),
        "com.docker.network.bridge.enable_ip_masquerade": str(st.opts.ip_masq).lower(),
        "com.docker.network.bridge.host_binding_ipv4": st.opts.default_bind_ip,
        "com.docker.network.bridge.name": st.opts.bridge_name,
        "com.docker.network.driver.mtu": str(st.opts.mtu),
    }


async def bring_up_user(st: NetworkState, net: Network) -> None:
    """Create (or find again, after a restart) a user network's bridge, and its rules."""
    dev = st.device(net)
    exists, _ = await br.bridge_address(dev)
    address6 = ipaddress.IPv6Interface(f"{net.gateway6}/{net.subnet6.split('/')[1]}") \
        if net.enable_ipv6 and net.subnet6 else None
    if not exists:
        prefix = net.subnet.split("/")[1]
        mtu = usernets.NetworkRequest(net.name, options=dict(net.options)).mtu(st.opts.mtu)
        await br.create_bridge(dev, ipaddress.IPv4Interface(f"{net.gateway}/{prefix}"), mtu,
                               address6)
        net.bridge_created = True
        st.store.put(K_NETWORK, net.id, net.to_doc())
    else:
        if address6 is not None:
            await br.add_address6(dev, address6)
        await br.set_up(dev)
    if st.opts.ip_forward and not net.internal:
        await br.enable_ip_forward()
        if address6 is not None:
            await br.enable_ip6_forward()
    if st.opts.iptables:
        await br.install_rules(st.rules(net))


async def refresh_isolation(st: NetworkState, skip: str = "") -> None:
    """Rebuild every bridge's filter chain after the set of bridges changed."""
    if not st.opts.iptables:
        return
    for net in list(st.networks.values()):
        if net.driver == "bridge" and net.id != skip:
            try:
                await br.install_rules(st.rules(net))
            except Exception:  # noqa: BLE001
                log.exception("could not update the rules of network %s", net.name)


async def tear_down_user(st: NetworkState, net: Network) -> None:
    """Forget a user network and remove its bridge and rules (a plugin's network has
    neither: its plugin was told by plugnets.py)."""
    dev = st.device(net)
    st.networks.pop(net.id, None)
    st.pools.pop(net.id, None)
    st.pools6.pop(net.id, None)
    st.leases.pop(net.id, None)
    if net.driver != "bridge":
        st.store.delete(K_NETWORK, net.id)
        return
    if st.opts.iptables:
        try:
            await br.remove_rules(dev)
        except Exception:  # noqa: BLE001
            log.exception("removing the rules of %s", dev)
    if net.bridge_created or not net.options.get(usernets.OPT_BRIDGE_NAME):
        try:
            await br.delete_link(dev)
        except Exception:  # noqa: BLE001
            log.exception("removing bridge %s", dev)
    st.store.delete(K_NETWORK, net.id)


async def stop(st: NetworkState) -> None:
    """Leave bridge, rules, sandboxes and veths in place (live-restore); only the
    embedded DNS sockets close (served again by reconcile() at the next start)."""
    await st.dns.close()


async def cleanup(st: NetworkState) -> None:
    """Remove everything this daemon made: endpoints, sandboxes, chains, and the
    bridge if pydockerd created it. Used by tests and explicit teardown."""
    for cid in {ep.container_id for ep in st.endpoints_by_key.values()}:
        await endpoints.release_sandbox(st, cid)
    if os.path.isdir(st.netns_dir):
        for entry in os.listdir(st.netns_dir):
            sandbox.remove_netns(os.path.join(st.netns_dir, entry))
    for user in [n for n in st.networks.values() if not n.predefined]:
        await tear_down_user(st, user)
    net = st.bridge_network()
    if net is None:
        return
    if st.opts.iptables:
        await br.remove_rules(st.opts.bridge_name)
    if net.bridge_created:
        await br.delete_link(st.opts.bridge_name)
        net.bridge_created = False
        st.store.put(K_NETWORK, net.id, net.to_doc())


async def reconcile(st: NetworkState, live_container_ids: Collection[str]) -> None:
    """After a restart: release endpoints and sandboxes of containers that are gone."""
    live = set(live_container_ids)
    for cid in {ep.container_id for ep in st.endpoints_by_key.values()} - live:
        try:
            await endpoints.release_sandbox(st, cid)
        except DockerError as e:      # a full disk, say: the next start retries it
            log.warning("releasing the network sandbox of %s: %s", cid[:12], e.message)
    if os.path.isdir(st.netns_dir):
        for entry in os.listdir(st.netns_dir):
            if entry not in live:
                sandbox.remove_netns(os.path.join(st.netns_dir, entry))
    for doc in st.store.all(K_LEASE).values():
        if doc.get("container_id") not in live:
            try:
                st.release_lease(doc["network_id"], doc["ip"])
            except DockerError as e:
                log.warning("releasing the address %s: %s", doc["ip"], e.message)
    for ep in list(st.endpoints_by_key.values()):        # live restore of the embedded DNS
        net = st.networks.get(ep.network_id)
        if net is not None and not net.predefined and sandbox.live_pin(ep.netns_path):
            try:
                await st.dns.serve(ep.container_id, ep.netns_path)
            except Exception:  # noqa: BLE001
                log.exception("embedded DNS for %s", ep.container_id[:12])
