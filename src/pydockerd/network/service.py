"""NetworkService: the predefined networks (bridge, host, none), sandboxes and endpoints.

State in the store:
  kind "network"  id = network id        Network documents (stable ids across restarts)
  kind "ipam"     id = "<net id>/<ip>"   address leases {network_id, ip, container_id}
  kind "endpoint" id = "<cid>/<net id>"  Endpoint documents
An endpoint and its lease are written before any device exists, so a crash half
way leaves records that disconnect()/reconcile() know how to undo.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from typing import Awaitable, Callable, Collection

from ..errors import Conflict, Forbidden, InvalidParameter, NotFound
from ..events import EventBus
from ..store import Store
from ..util.ids import new_id, now_rfc3339
from . import bridge as br
from . import files, filters as nfilters, sandbox, usernets
from .ipam import Pool, choose_default_subnet, mac_for_ip, normalize_mac, parse_interface, \
    parse_network
from .model import PREDEFINED, Endpoint, Network, endpoint_key, lease_key
from .resolver import EmbeddedDNS

log = logging.getLogger("pydockerd.network")

DEFAULT_BRIDGE = "pydocker0"
DEFAULT_MTU = 1500

K_NETWORK, K_ENDPOINT, K_LEASE = "network", "endpoint", "ipam"

# aliases: inside the class body `list` names the method NetworkService.list
Filters = dict[str, list[str]]
Endpoints = list[Endpoint]
Networks = list[Network]
StrList = list[str]
Peers = list[tuple[Endpoint, Network]]
Names = list[str]


class NetworkService:
    def __init__(self, store: Store, events: EventBus, exec_root: str, *,
                 bridge_name: str = DEFAULT_BRIDGE, bip: str | None = None,
                 fixed_cidr: str | None = None, mtu: int | None = DEFAULT_MTU,
                 iptables: bool = True, ip_forward: bool = True, ip_masq: bool = True,
                 icc: bool = True, default_bind_ip: str = "0.0.0.0") -> None:
        if len(bridge_name) > 15 or not bridge_name or "/" in bridge_name:
            raise InvalidParameter(f"invalid bridge name: {bridge_name!r}")
        self._store = store
        self._events = events
        self._netns_dir = os.path.join(exec_root, "netns")
        self.bridge_name = bridge_name
        self._bip = parse_interface(bip) if bip else None
        self._fixed_cidr = parse_network(fixed_cidr) if fixed_cidr else None
        self.mtu = mtu or DEFAULT_MTU
        self._iptables, self._ip_forward, self._ip_masq = iptables, ip_forward, ip_masq
        self._icc = icc
        self.default_bind_ip = default_bind_ip
        # set by the daemon: container id -> name (without the leading "/")
        self.container_name: Callable[[str], str] | None = None
        # set by the daemon: called with the bridge device of a removed network
        self.bridge_removed_hooks: list[Callable[[str], Awaitable[None]]] = []
        self._networks: dict[str, Network] = {}
        self._pools: dict[str, Pool] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self._leases: dict[str, set[ipaddress.IPv4Address]] = {}
        self._lock = asyncio.Lock()         # network create/remove
        self.dns = EmbeddedDNS(self._dns_lookup, self._dns_reverse)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        stored = {d["name"]: Network.from_doc(d) for d in self._store.all(K_NETWORK).values()}
        for name, driver in (("host", "host"), ("none", "null")):
            net = stored.get(name) or Network(new_id(), name, driver, now_rfc3339())
            self._store.put(K_NETWORK, net.id, net.to_doc())
            self._networks[net.id] = net
        users = [n for n in stored.values() if not n.predefined and n.driver == "bridge"]
        for net in users:
            self._networks[net.id] = net
            self._pools[net.id] = Pool(ipaddress.IPv4Network(net.subnet),
                                       ipaddress.IPv4Address(net.gateway),
                                       parse_network(net.ip_range) if net.ip_range else None)
        if self.bridge_name != "none":
            await self._start_bridge(stored.get("bridge"))
        for net in users:
            try:
                await self._bring_up_user(net)
            except Exception:  # noqa: BLE001 - one broken network must not stop the daemon
                log.exception("could not restore network %s", net.name)
        for doc in self._store.all(K_ENDPOINT).values():
            ep = Endpoint.from_doc(doc)
            self._endpoints[ep.key] = ep
        for doc in self._store.all(K_LEASE).values():
            self._leases.setdefault(doc["network_id"], set()).add(
                ipaddress.IPv4Address(doc["ip"]))

    async def _start_bridge(self, prev: Network | None) -> None:
        name = self.bridge_name
        exists, address = await br.bridge_address(name)
        same_device = prev is not None and prev.options.get(
            "com.docker.network.bridge.name") == name
        owned = same_device and prev is not None and prev.bridge_created
        if exists:
            if address is None:
                raise InvalidParameter(f"bridge {name} exists but has no IPv4 address; "
                                       "pydockerd does not reconfigure a bridge it did not create")
            if self._bip is not None and self._bip != address:
                log.warning("bridge %s already has address %s; --bip %s ignored",
                            name, address, self._bip)
            if owned:
                await br.set_up(name)
        else:
            address = self._bip
            if address is None and prev is not None and prev.subnet:
                address = ipaddress.IPv4Interface(f"{prev.gateway}/{prev.subnet.split('/')[1]}")
                if any(address.network.overlaps(n) for n in await br.host_networks()
                       if n.prefixlen > 0):
                    address = None
            if address is None:
                subnet = choose_default_subnet(await br.host_networks())
                address = ipaddress.IPv4Interface(f"{subnet[1]}/{subnet.prefixlen}")
            await br.create_bridge(name, address, self.mtu)
            owned = True
        pool = Pool(address.network, address.ip, self._fixed_cidr)
        net = Network(prev.id if prev else new_id(), "bridge", "bridge",
                      prev.created if prev else now_rfc3339(),
                      subnet=str(address.network), gateway=str(address.ip),
                      ip_range=str(self._fixed_cidr) if self._fixed_cidr else "",
                      options=self._bridge_options(), bridge_created=owned)
        self._store.put(K_NETWORK, net.id, net.to_doc())
        self._networks[net.id] = net
        self._pools[net.id] = pool
        if self._ip_forward:
            await br.enable_ip_forward()
        if self._iptables:
            if not self._icc:
                await br.enable_bridge_netfilter()
            await br.install_rules(self._rules(net))

    # ------------------------------------------------------------ user-defined bridges

    def device(self, net: Network) -> str:
        """The Linux bridge of a bridge network."""
        return net.bridge_name or self.bridge_name

    def _bridge_devices(self) -> tuple[str, ...]:
        return tuple(sorted(self.device(n) for n in self._networks.values()
                            if n.driver == "bridge"))

    def _rules(self, net: Network) -> br.Rules:
        if net.name == "bridge":
            return br.Rules(self.bridge_name, net.subnet, self._icc, self._ip_masq,
                            isolate=self._bridge_devices())
        req = usernets.NetworkRequest(net.name, options=dict(net.options))
        return br.Rules(self.device(net), net.subnet, req.icc, self._ip_masq and req.ip_masq,
                        internal=net.internal, isolate=self._bridge_devices())

    async def _bring_up_user(self, net: Network) -> None:
        """Create (or find again, after a restart) a user network's bridge, and its rules."""
        dev = self.device(net)
        exists, _ = await br.bridge_address(dev)
        if not exists:
            prefix = net.subnet.split("/")[1]
            mtu = usernets.NetworkRequest(net.name, options=dict(net.options)).mtu(self.mtu)
            await br.create_bridge(dev, ipaddress.IPv4Interface(f"{net.gateway}/{prefix}"), mtu)
            net.bridge_created = True
            self._store.put(K_NETWORK, net.id, net.to_doc())
        else:
            await br.set_up(dev)
        if self._ip_forward and not net.internal:
            await br.enable_ip_forward()
        if self._iptables:
            await br.install_rules(self._rules(net))

    async def _refresh_isolation(self, skip: str = "") -> None:
        """Rebuild every bridge's filter chain after the set of bridges changed."""
        if not self._iptables:
            return
        for net in list(self._networks.values()):
            if net.driver == "bridge" and net.id != skip:
                try:
                    await br.install_rules(self._rules(net))
                except Exception:  # noqa: BLE001
                    log.exception("could not update the rules of network %s", net.name)

    def _bridge_options(self) -> dict[str, str]:
        return {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": str(self._icc).lower(),
            "com.docker.network.bridge.enable_ip_masquerade": str(self._ip_masq).lower(),
            "com.docker.network.bridge.host_binding_ipv4": self.default_bind_ip,
            "com.docker.network.bridge.name": self.bridge_name,
            "com.docker.network.driver.mtu": str(self.mtu),
        }

    async def stop(self) -> None:
        """Leave bridge, rules, sandboxes and veths in place (live-restore); only the
        embedded DNS sockets close (served again by reconcile() at the next start)."""
        await self.dns.close()

    async def cleanup(self) -> None:
        """Remove everything this daemon made: endpoints, sandboxes, chains, and the
        bridge if pydockerd created it. Used by tests and explicit teardown."""
        for cid in {ep.container_id for ep in self._endpoints.values()}:
            await self.release_sandbox(cid)
        if os.path.isdir(self._netns_dir):
            for entry in os.listdir(self._netns_dir):
                sandbox.remove_netns(os.path.join(self._netns_dir, entry))
        for user in [n for n in self._networks.values() if not n.predefined]:
            await self._tear_down_user(user)
        net = self._bridge_network()
        if net is None:
            return
        if self._iptables:
            await br.remove_rules(self.bridge_name)
        if net.bridge_created:
            await br.delete_link(self.bridge_name)
            net.bridge_created = False
            self._store.put(K_NETWORK, net.id, net.to_doc())

    async def reconcile(self, live_container_ids: Collection[str]) -> None:
        """After a restart: release endpoints and sandboxes of containers that are gone."""
        live = set(live_container_ids)
        for cid in {ep.container_id for ep in self._endpoints.values()} - live:
            await self.release_sandbox(cid)
        if os.path.isdir(self._netns_dir):
            for entry in os.listdir(self._netns_dir):
                if entry not in live:
                    sandbox.remove_netns(os.path.join(self._netns_dir, entry))
        for doc in self._store.all(K_LEASE).values():
            if doc.get("container_id") not in live:
                self._release_lease(doc["network_id"], doc["ip"])
        for ep in list(self._endpoints.values()):        # live restore of the embedded DNS
            net = self._networks.get(ep.network_id)
            if net is not None and not net.predefined:
                try:
                    await self.dns.serve(ep.container_id, ep.netns_path)
                except Exception:  # noqa: BLE001
                    log.exception("embedded DNS for %s", ep.container_id[:12])

    # ------------------------------------------------------------ queries

    def get(self, name_or_id: str) -> Network:
        if not name_or_id:
            raise NotFound("network  not found")
        if name_or_id in self._networks:
            return self._networks[name_or_id]
        for net in self._networks.values():
            if net.name == name_or_id:
                return net
        matches = [n for n in self._networks.values() if n.id.startswith(name_or_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {name_or_id} is ambiguous "
                                   f"({len(matches)} matches found based on ID prefix)")
        raise NotFound(f"network {name_or_id} not found")

    def list(self, filters: Filters | None = None) -> Networks:
        nets = sorted(self._networks.values(), key=lambda n: n.name)
        return nfilters.apply(nets, filters or {}, lambda n: bool(self.attached(n.id)))

    def attached(self, network_id: str) -> Endpoints:
        return [ep for ep in self._endpoints.values() if ep.network_id == network_id]

    def endpoints(self, container_id: str) -> Endpoints:
        return [ep for ep in self._endpoints.values() if ep.container_id == container_id]

    def endpoint(self, container_id: str, network: str | None = None) -> Endpoint | None:
        for ep in self.endpoints(container_id):
            if network is None or ep.network_id == self.get(network).id:
                return ep
        return None

    def name_of(self, container_id: str) -> str:
        if self.container_name is not None:
            try:
                return self.container_name(container_id).lstrip("/")
            except Exception:                       # container gone: fall through
                pass
        return container_id[:12]

    @property
    def bridge_gateway(self) -> str | None:
        net = self._bridge_network()
        return net.gateway if net else None

    def _bridge_network(self) -> Network | None:
        for net in self._networks.values():
            if net.name == "bridge":
                return net
        return None

    # ------------------------------------------------------------ mutations

    async def create_network(self, req: usernets.NetworkRequest) -> Network:
        async with self._lock:
            if any(n.name == req.name for n in self._networks.values()) \
                    or req.name in PREDEFINED:
                raise Conflict(f"network with name {req.name} already exists")
            ours = [ipaddress.IPv4Network(n.subnet) for n in self._networks.values()
                    if n.subnet]
            pool = usernets.plan_pool(req, await br.host_networks(), ours)
            nid = new_id()
            dev = req.options.get(usernets.OPT_BRIDGE_NAME) or f"br-{nid[:12]}"
            if dev in self._bridge_devices() or await br.link_exists(dev):
                raise Conflict(f"bridge device {dev} already exists")
            req.mtu(self.mtu)
            net = Network(nid, req.name, "bridge", now_rfc3339(), subnet=str(pool.subnet),
                          gateway=str(pool.gateway),
                          ip_range=str(pool.ip_range) if pool.ip_range else "",
                          options=dict(req.options), labels=dict(req.labels),
                          internal=req.internal, attachable=req.attachable, bridge_name=dev)
            self._networks[net.id] = net
            self._pools[net.id] = pool
            try:
                await self._bring_up_user(net)
            except BaseException:
                await asyncio.shield(self._tear_down_user(net))
                raise
            self._store.put(K_NETWORK, net.id, net.to_doc())
            await self._refresh_isolation(skip=net.id)
        self._events.publish("network", "create", net.id, {"name": net.name, "type": "bridge"})
        return net

    async def _tear_down_user(self, net: Network) -> None:
        dev = self.device(net)
        self._networks.pop(net.id, None)
        self._pools.pop(net.id, None)
        self._leases.pop(net.id, None)
        if self._iptables:
            try:
                await br.remove_rules(dev)
            except Exception:  # noqa: BLE001
                log.exception("removing the rules of %s", dev)
        if net.bridge_created or not net.options.get(usernets.OPT_BRIDGE_NAME):
            try:
                await br.delete_link(dev)
            except Exception:  # noqa: BLE001
                log.exception("removing bridge %s", dev)
        self._store.delete(K_NETWORK, net.id)

    async def remove_network(self, name_or_id: str) -> None:
        net = self.get(name_or_id)
        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        async with self._lock:
            if self.attached(net.id):
                raise Forbidden(f"error while removing network: network {net.name} has "
                                "active endpoints")
            if net.id not in self._networks:
                raise NotFound(f"network {name_or_id} not found")
            dev = self.device(net)
            await self._tear_down_user(net)
            await self._refresh_isolation()
            for hook in self.bridge_removed_hooks:
                await hook(dev)
        self._events.publish("network", "destroy", net.id, {"name": net.name, "type": "bridge"})

    async def prune(self, filters: Filters | None = None) -> Names:
        """Remove the user-defined networks without endpoints; their names."""
        removed: Names = []
        for net in nfilters.prunable(list(self._networks.values()), filters or {}):
            if self.attached(net.id):
                continue
            try:
                await self.remove_network(net.id)
            except (Forbidden, NotFound):
                continue
            removed.append(net.name)
        return removed

    async def create_sandbox(self, container_id: str) -> str:
        """A fresh network namespace for the container, pinned at a file; returns its path."""
        path = self.netns_path(container_id)
        if os.path.lexists(path):               # a leftover from a crash: never reuse it
            await asyncio.to_thread(sandbox.remove_netns, path)
        await sandbox.create_netns(path)
        return path

    def netns_path(self, container_id: str) -> str:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise InvalidParameter(f"invalid container id: {container_id!r}")
        return os.path.join(self._netns_dir, container_id)

    async def connect(self, container_id: str, netns_path: str, network: str = "bridge", *,
                      mac: str | None = None, ip: str | None = None,
                      aliases: Collection[str] = ()) -> Endpoint:
        net = self.get(network)
        if net.driver != "bridge":
            raise InvalidParameter("container cannot be disconnected from host network or "
                                   "connected to host network" if net.driver == "host" else
                                   f"container cannot be connected to network {net.name}")
        if ip and net.predefined:
            raise InvalidParameter("user specified IP address is supported on user defined "
                                   "networks only")
        if aliases and net.predefined:
            raise InvalidParameter("network-scoped alias is supported only for containers in "
                                   "user defined networks")
        if endpoint_key(container_id, net.id) in self._endpoints:
            raise Forbidden(f"endpoint with name {self.name_of(container_id)} already exists "
                            f"in network {net.name}")
        mac = normalize_mac(mac) if mac else None
        preferred = None
        if ip:
            try:
                preferred = ipaddress.IPv4Address(ip)
            except ValueError:
                raise InvalidParameter(f"invalid IPv4 address: {ip}") from None
        mine = self.endpoints(container_id)
        used_if = {e.ifname for e in mine}
        ifname = next(f"eth{i}" for i in range(len(mine) + 1) if f"eth{i}" not in used_if)
        # the default route goes through the first network that has one (not internal)
        has_gw = any(not n.internal for e in mine if (n := self._networks.get(e.network_id)))
        ep = self._reserve(container_id, net, netns_path, mac, preferred, ifname,
                           list(dict.fromkeys(aliases)))
        try:
            await sandbox.create_veth(ep.host_veth, self.device(net), netns_path,
                                      usernets.NetworkRequest(net.name, options=dict(
                                          net.options)).mtu(self.mtu), ep.mac, ifname)
            await sandbox.configure_eth0(netns_path, f"{ep.ip}/{ep.prefix_len}",
                                         None if net.internal or has_gw else ep.gateway,
                                         ifname)
            if not net.predefined:
                await self.dns.serve(container_id, netns_path)
        except BaseException:
            await asyncio.shield(self._teardown(ep))
            raise
        self._events.publish("network", "connect", net.id,
                             {"container": container_id, "name": net.name, "type": net.driver})
        return ep

    def _reserve(self, container_id: str, net: Network, netns_path: str,
                 mac: str | None, preferred: ipaddress.IPv4Address | None = None,
                 ifname: str = "eth0", aliases: StrList | None = None) -> Endpoint:
        """Lease an address and record the endpoint (no await: atomic on the loop)."""
        pool = self._pools[net.id]
        used = self._leases.setdefault(net.id, set())
        addr = pool.allocate(used, preferred)
        veths = {e.host_veth for e in self._endpoints.values()}
        veth = "veth" + os.urandom(4).hex()[:7]
        while veth in veths:
            veth = "veth" + os.urandom(4).hex()[:7]
        ep = Endpoint(net.id, new_id(), container_id, str(addr), pool.subnet.prefixlen,
                      str(pool.gateway), mac or mac_for_ip(addr), veth, netns_path, ifname,
                      list(aliases or []))
        with self._store.transaction():
            self._store.put(K_LEASE, lease_key(net.id, ep.ip),
                            {"network_id": net.id, "ip": ep.ip, "container_id": container_id,
                             "endpoint_id": ep.endpoint_id})
            self._store.put(K_ENDPOINT, ep.key, ep.to_doc())
        used.add(addr)
        self._endpoints[ep.key] = ep
        return ep

    async def _teardown(self, ep: Endpoint) -> None:
        await sandbox.delete_veth(ep.host_veth)
        with self._store.transaction():
            self._release_lease(ep.network_id, ep.ip)
            self._store.delete(K_ENDPOINT, ep.key)
        self._endpoints.pop(ep.key, None)

    def _release_lease(self, network_id: str, ip: str) -> None:
        self._store.delete(K_LEASE, lease_key(network_id, ip))
        self._leases.get(network_id, set()).discard(ipaddress.IPv4Address(ip))

    async def disconnect(self, container_id: str, network: str | None = None) -> None:
        """Delete the container's veth(s) and release their leases; idempotent."""
        for ep in self.endpoints(container_id):
            if network is not None and ep.network_id != self.get(network).id:
                continue
            await self._teardown(ep)
            net = self._networks.get(ep.network_id)
            self._events.publish("network", "disconnect", ep.network_id,
                                 {"container": container_id,
                                  "name": net.name if net else "", "type": net.driver if net else ""})

    async def release_sandbox(self, container_id: str) -> None:
        """disconnect() plus unmount and delete the namespace file; idempotent."""
        await self.dns.stop_serving(container_id)
        await self.disconnect(container_id)
        await asyncio.to_thread(sandbox.remove_netns, self.netns_path(container_id))

    # ------------------------------------------------------------ container files

    def resolv_conf(self, dns: StrList, search: StrList, options: StrList, *,
                    host_network: bool = False, embedded_dns: bool = False) -> str:
        if embedded_dns:
            return files.embedded_resolv_conf(search, options)
        return files.resolv_conf(dns, search, options, host_network=host_network)

    def uses_embedded_dns(self, container_id: str) -> bool:
        return any(not n.predefined for e in self.endpoints(container_id)
                   if (n := self._networks.get(e.network_id)))

    # ------------------------------------------------------------ embedded DNS answers

    def _dns_peers(self, container_id: str) -> Peers:
        """Endpoints on the user-defined networks the asking container is on."""
        nets = {e.network_id for e in self.endpoints(container_id)}
        return [(e, n) for e in self._endpoints.values()
                if e.network_id in nets and (n := self._networks.get(e.network_id))
                and not n.predefined]

    def dns_names(self, ep: Endpoint) -> StrList:
        """[name, short id, aliases...], as inspect's DNSNames shows them."""
        return list(dict.fromkeys([self.name_of(ep.container_id), ep.container_id[:12],
                                   *ep.aliases]))

    def _dns_lookup(self, container_id: str, name: str) -> StrList | None:
        name = name.rstrip(".").lower()
        out: StrList = []
        for ep, net in self._dns_peers(container_id):
            names = {n.lower() for n in self.dns_names(ep)}
            if name in names or name in {f"{n}.{net.name.lower()}" for n in names}:
                out.append(ep.ip)
        return list(dict.fromkeys(out)) or None

    def _dns_reverse(self, container_id: str, ip: str) -> StrList | None:
        out = [f"{self.name_of(ep.container_id)}.{net.name}"
               for ep, net in self._dns_peers(container_id) if ep.ip == ip]
        return out or None

    def hosts_file(self, hostname: str, domainname: str, ip: str,
                   extra_hosts: StrList) -> str:
        return files.hosts_file(hostname, domainname, ip, extra_hosts,
                                host_gateway_ip=self.bridge_gateway)
