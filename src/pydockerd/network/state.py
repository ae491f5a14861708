"""What every network verb works on: the daemon's options, the networks, address pools,
endpoints and leases in memory, and the queries over them (lookup, endpoints of a
container, embedded DNS answers).

State in the store:
  kind "network"  id = network id        Network documents (stable ids across restarts)
  kind "ipam"     id = "<net id>/<ip>"   address leases {network_id, ip, container_id}
                                         (IPv4 and IPv6 alike)
  kind "endpoint" id = "<cid>/<net id>"  Endpoint documents
An endpoint and its lease are written before any device exists, so a crash half
way leaves records that disconnect()/reconcile() know how to undo.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Awaitable, Callable, Protocol, Sequence

from ..errors import InvalidParameter, NotFound
from ..events import EventBus
from ..store import Store
from ..util.idmap import IDENTITY, IdMap
from . import bridge as br
from . import usernets
from .ipam import DEFAULT_POOLS4, AddressPool, IPAddr, Pool, ula_base
from .model import Endpoint, Network, lease_key
from .ipam_remote import IpamCapabilities
from .remote import Capabilities, PluginGetter
from .resolver import EmbeddedDNS, upstream_servers

DEFAULT_BRIDGE = "pydocker0"
DEFAULT_MTU = 1500

K_NETWORK, K_ENDPOINT, K_LEASE = "network", "endpoint", "ipam"


class ContainerNames(Protocol):
    """What DNS answers and network inspect need to know about containers (the
    container registry answers it)."""

    def name_of(self, container_id: str) -> str | None:
        """The name without the leading "/"; None when the container is gone."""
        ...

    def endpoint_links(self, container_id: str, network: str) -> dict[str, str]:
        """The legacy link aliases of the container's endpoint on `network`
        ({alias: target name}), which its embedded DNS answers."""
        ...

    def dns_servers(self, container_id: str) -> Sequence[str]:
        """The container's own `--dns` servers (none: empty)."""
        ...


BridgeRemoved = Callable[[str], Awaitable[None]]


@dataclass
class NetworkOptions:
    """The daemon's network flags (--bridge, --bip, --fixed-cidr, --mtu, --iptables, ...)."""

    bridge_name: str
    bip: ipaddress.IPv4Interface | None
    fixed_cidr: ipaddress.IPv4Network | None
    mtu: int
    iptables: bool
    ip_forward: bool
    ip_masq: bool
    icc: bool
    default_bind_ip: str
    ipv6: bool = False                                   # --ipv6: the default bridge too
    fixed_cidr_v6: ipaddress.IPv6Network | None = None
    ip6tables: bool = True
    # default address pools (--default-address-pool); IPv6: see pools6
    pools4: tuple[AddressPool, ...] = DEFAULT_POOLS4
    configured_pools6: tuple[AddressPool, ...] = ()
    ula_seed: str | None = None        # the engine id: the daemon's ULA prefix derives
    dns: tuple[str, ...] = ()          # the daemon's --dns: external DNS servers

    @cached_property
    def pools6(self) -> tuple[AddressPool, ...]:
        """The default IPv6 pools: the configured ones, else /64s of the daemon's ULA
        prefix (moby 27+), else none (an IPv6 network needs a subnet). Derived on first
        use: the prefix is a sha256, and OpenSSL's hashlib is memory an idle daemon
        without IPv6 does without (issue 10)."""
        if self.configured_pools6 or self.ula_seed is None:
            return self.configured_pools6
        return (AddressPool(ula_base(self.ula_seed), 64),)


@dataclass
class NetworkState:
    store: Store
    events: EventBus
    netns_dir: str
    opts: NetworkOptions
    containers: ContainerNames
    # called with the bridge device of a removed network (port publishing rules)
    bridge_removed: Sequence[BridgeRemoved] = ()
    ids: IdMap = IDENTITY           # --userns-remap: sandboxes get a user namespace
    plugins: PluginGetter | None = None     # network and IPAM plugins
    # plugins' capabilities, asked once per plugin (libnetwork: at registration)
    driver_caps: dict[str, Capabilities] = field(default_factory=dict)
    ipam_caps: dict[str, IpamCapabilities] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)
    pools6: dict[str, Pool] = field(default_factory=dict)     # networks with IPv6
    endpoints_by_key: dict[str, Endpoint] = field(default_factory=dict)
    leases: dict[str, set[IPAddr]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)     # network create/remove
    dns: EmbeddedDNS = field(init=False)

    def __post_init__(self) -> None:
        self.dns = EmbeddedDNS(self.dns_lookup, self.dns_reverse, self.dns_upstreams)

    # ------------------------------------------------------------ lookup

    def get(self, name_or_id: str) -> Network:
        if not name_or_id:
            raise NotFound("network  not found")
        if name_or_id in self.networks:
            return self.networks[name_or_id]
        for net in self.networks.values():
            if net.name == name_or_id:
                return net
        matches = [n for n in self.networks.values() if n.id.startswith(name_or_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {name_or_id} is ambiguous "
                                   f"({len(matches)} matches found based on ID prefix)")
        raise NotFound(f"network {name_or_id} not found")

    def attached(self, network_id: str) -> list[Endpoint]:
        return [ep for ep in self.endpoints_by_key.values() if ep.network_id == network_id]

    def endpoints(self, container_id: str) -> list[Endpoint]:
        return [ep for ep in self.endpoints_by_key.values() if ep.container_id == container_id]

    def name_of(self, container_id: str) -> str:
        return self.containers.name_of(container_id) or container_id[:12]

    def bridge_network(self) -> Network | None:
        for net in self.networks.values():
            if net.name == "bridge":
                return net
        return None

    def netns_path(self, container_id: str) -> str:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise InvalidParameter(f"invalid container id: {container_id!r}")
        return os.path.join(self.netns_dir, container_id)

    def plugin_getter(self, name: str) -> PluginGetter:
        """Where the plugin `name` is looked up (a daemon without plugins has none)."""
        if self.plugins is None:
            raise NotFound(f'plugin "{name}" not found')
        return self.plugins

    # ------------------------------------------------------------ bridges

    def device(self, net: Network) -> str:
        """The Linux bridge of a bridge network."""
        return net.bridge_name or self.opts.bridge_name

    def bridge_devices(self) -> tuple[str, ...]:
        return tuple(sorted(self.device(n) for n in self.networks.values()
                            if n.driver == "bridge"))

    def rules(self, net: Network) -> br.Rules:
        o = self.opts
        subnet6 = net.subnet6 if net.enable_ipv6 and o.ip6tables else ""
        if net.name == "bridge":
            return br.Rules(o.bridge_name, net.subnet, o.icc, o.ip_masq,
                            isolate=self.bridge_devices(), subnet6=subnet6)
        req = usernets.NetworkRequest(net.name, options=dict(net.options))
        return br.Rules(self.device(net), net.subnet, req.icc, o.ip_masq and req.ip_masq,
                        internal=net.internal, isolate=self.bridge_devices(),
                        subnet6=subnet6)

    def release_lease(self, network_id: str, ip: str) -> None:
        self.store.delete(K_LEASE, lease_key(network_id, ip))
        self.leases.get(network_id, set()).discard(ipaddress.ip_address(ip))

    # ------------------------------------------------------------ embedded DNS answers

    def _dns_peers(self, container_id: str) -> list[tuple[Endpoint, Network]]:
        """Endpoints on the user-defined networks the asking container is on."""
        nets = {e.network_id for e in self.endpoints(container_id)}
        return [(e, n) for e in self.endpoints_by_key.values()
                if e.network_id in nets and (n := self.networks.get(e.network_id))
                and not n.predefined]

    def dns_names(self, ep: Endpoint) -> list[str]:
        """[name, short id, aliases...], as inspect's DNSNames shows them."""
        return list(dict.fromkeys([self.name_of(ep.container_id), ep.container_id[:12],
                                   *ep.aliases]))

    def _link_target(self, container_id: str, net: Network, name: str) -> str:
        """A legacy link alias of the asker's endpoint on `net` stands for its target
        there (libnetwork's endpoint aliases: for the linking container only)."""
        suffix = "." + net.name.lower()
        for alias, target in self.containers.endpoint_links(container_id, net.name).items():
            if name == alias.lower():
                return target.lower()
            if name == alias.lower() + suffix:
                return target.lower() + suffix
        return name

    def dns_upstreams(self, container_id: str) -> list[str]:
        """Where the embedded DNS forwards a container's other queries, as dockerd's
        external resolvers: its --dns, else the daemon's --dns, else the host's."""
        return list(self.containers.dns_servers(container_id) or self.opts.dns) \
            or upstream_servers()

    def dns_lookup(self, container_id: str, name: str) -> list[str] | None:
        name = name.rstrip(".").lower()
        out: list[str] = []
        wanted: dict[str, str] = {}
        for ep, net in self._dns_peers(container_id):
            if net.id not in wanted:
                wanted[net.id] = self._link_target(container_id, net, name)
            q = wanted[net.id]
            names = {n.lower() for n in self.dns_names(ep)}
            if q in names or q in {f"{n}.{net.name.lower()}" for n in names}:
                out.extend(a for a in (ep.ip, ep.ip6) if a)
        return list(dict.fromkeys(out)) or None

    def dns_reverse(self, container_id: str, ip: str) -> list[str] | None:
        out = [f"{self.name_of(ep.container_id)}.{net.name}"
               for ep, net in self._dns_peers(container_id) if ip in (ep.ip, ep.ip6)]
        return out or None
