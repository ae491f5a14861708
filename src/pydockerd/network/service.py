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
from typing import Callable, Collection

from ..errors import Conflict, Forbidden, InvalidParameter, NotFound, NotImplementedErr
from ..events import EventBus
from ..store import Store
from ..util.ids import new_id, now_rfc3339
from . import bridge as br
from . import files, filters as nfilters, sandbox
from .ipam import Pool, choose_default_subnet, mac_for_ip, normalize_mac, parse_interface, \
    parse_network
from .model import PREDEFINED, Endpoint, Network, endpoint_key, lease_key

log = logging.getLogger("pydockerd.network")

DEFAULT_BRIDGE = "pydocker0"
DEFAULT_MTU = 1500

K_NETWORK, K_ENDPOINT, K_LEASE = "network", "endpoint", "ipam"

# aliases: inside the class body `list` names the method NetworkService.list
Filters = dict[str, list[str]]
Endpoints = list[Endpoint]
Networks = list[Network]
StrList = list[str]


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
        self._networks: dict[str, Network] = {}
        self._pools: dict[str, Pool] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self._leases: dict[str, set[ipaddress.IPv4Address]] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        stored = {d["name"]: Network.from_doc(d) for d in self._store.all(K_NETWORK).values()}
        for name, driver in (("host", "host"), ("none", "null")):
            net = stored.get(name) or Network(new_id(), name, driver, now_rfc3339())
            self._store.put(K_NETWORK, net.id, net.to_doc())
            self._networks[net.id] = net
        if self.bridge_name != "none":
            await self._start_bridge(stored.get("bridge"))
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
            await br.install_rules(br.Rules(name, net.subnet, self._icc, self._ip_masq))

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
        """Leave bridge, rules, sandboxes and veths in place (live-restore)."""

    async def cleanup(self) -> None:
        """Remove everything this daemon made: endpoints, sandboxes, chains, and the
        bridge if pydockerd created it. Used by tests and explicit teardown."""
        for cid in {ep.container_id for ep in self._endpoints.values()}:
            await self.release_sandbox(cid)
        if os.path.isdir(self._netns_dir):
            for entry in os.listdir(self._netns_dir):
                sandbox.remove_netns(os.path.join(self._netns_dir, entry))
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

    async def create_network(self, name: str) -> Network:
        if any(n.name == name for n in self._networks.values()) or name in PREDEFINED:
            raise Conflict(f"network with name {name} already exists")
        raise NotImplementedErr("user-defined networks are not supported yet by pydockerd "
                                "(only the predefined bridge, host and none networks exist)")

    async def remove_network(self, name_or_id: str) -> None:
        net = self.get(name_or_id)
        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        raise NotImplementedErr("user-defined networks are not supported yet")

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
        if ip:
            raise InvalidParameter("user specified IP address is supported on user defined "
                                   "networks only")
        if aliases:
            raise InvalidParameter("network-scoped alias is supported only for containers in "
                                   "user defined networks")
        if endpoint_key(container_id, net.id) in self._endpoints:
            raise Forbidden(f"endpoint with name {self.name_of(container_id)} already exists "
                            f"in network {net.name}")
        mac = normalize_mac(mac) if mac else None
        ep = self._reserve(container_id, net, netns_path, mac)
        try:
            await sandbox.create_veth(ep.host_veth, self.bridge_name, netns_path, self.mtu,
                                      ep.mac)
            await sandbox.configure_eth0(netns_path, f"{ep.ip}/{ep.prefix_len}", ep.gateway)
        except BaseException:
            await asyncio.shield(self._teardown(ep))
            raise
        self._events.publish("network", "connect", net.id,
                             {"container": container_id, "name": net.name, "type": net.driver})
        return ep

    def _reserve(self, container_id: str, net: Network, netns_path: str,
                 mac: str | None) -> Endpoint:
        """Lease an address and record the endpoint (no await: atomic on the loop)."""
        pool = self._pools[net.id]
        used = self._leases.setdefault(net.id, set())
        addr = pool.allocate(used)
        veths = {e.host_veth for e in self._endpoints.values()}
        veth = "veth" + os.urandom(4).hex()[:7]
        while veth in veths:
            veth = "veth" + os.urandom(4).hex()[:7]
        ep = Endpoint(net.id, new_id(), container_id, str(addr), pool.subnet.prefixlen,
                      str(pool.gateway), mac or mac_for_ip(addr), veth, netns_path)
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
        await self.disconnect(container_id)
        await asyncio.to_thread(sandbox.remove_netns, self.netns_path(container_id))

    # ------------------------------------------------------------ container files

    def resolv_conf(self, dns: StrList, search: StrList, options: StrList, *,
                    host_network: bool = False) -> str:
        return files.resolv_conf(dns, search, options, host_network=host_network)

    def hosts_file(self, hostname: str, domainname: str, ip: str,
                   extra_hosts: StrList) -> str:
        return files.hosts_file(hostname, domainname, ip, extra_hosts,
                                host_gateway_ip=self.bridge_gateway)
