"""NetworkService: the networks area of the daemon, a thin front over one verb module each:

    state.py      options, networks, pools, endpoints, leases; lookup; DNS answers
    lifecycle.py  start (predefined networks, default bridge, user bridges), stop,
                  reconcile after a restart, cleanup
    networks.py   user-defined networks: create, remove, prune
    plugnets.py   ... made with a network plugin (remote.py) or an IPAM plugin
                  (ipam_remote.py)
    endpoints.py  sandboxes (netns) and endpoints: connect, disconnect, release
    plugeps.py    ... endpoints on plugins' networks (Join, the plugin's interface)
    files.py      the container's /etc/hosts and /etc/resolv.conf

The store layout and crash-safety rules are in state.py.
"""
from __future__ import annotations

import os
from typing import Collection, Sequence

from ..errors import InvalidParameter
from ..events import EventBus
from ..instruments import NO_TIMER, ActionTimer, timed
from ..store import Store
from ..util.idmap import IDENTITY, IdMap
from . import endpoints as eps
from ..models import EndpointSettings, NetworkCreateRequest
from . import lifecycle, networks, sandbox
from . import filters as nfilters
from .ipam import DEFAULT_POOLS4, AddressPool, parse_interface, parse_network, parse_network6
from .model import Endpoint, Network, NetworkMember, PortOptions
from .remote import PluginGetter
from .resolver import EmbeddedDNS
from .state import (DEFAULT_BRIDGE, DEFAULT_MTU, BridgeRemoved, ContainerNames, NetworkOptions,
                    NetworkState)

# aliases: inside the class body `list` names the method NetworkService.list
Filters = dict[str, list[str]]
Endpoints = list[Endpoint]
Networks = list[Network]
Members = list[NetworkMember]
StrList = list[str]
Names = list[str]


def _default_pools(configured: Sequence[AddressPool]
                   ) -> tuple[tuple[AddressPool, ...], tuple[AddressPool, ...]]:
    """(IPv4, IPv6) default pools as moby: the configured ones replace the defaults
    (without an IPv6 one, NetworkOptions.pools6 derives them from the engine id)."""
    v4 = tuple(p for p in configured if p.base.version == 4) or DEFAULT_POOLS4
    return v4, tuple(p for p in configured if p.base.version == 6)


class NetworkService:
    def __init__(self, store: Store, events: EventBus, exec_root: str, *,
                 containers: ContainerNames, on_bridge_removed: Sequence[BridgeRemoved] = (),
                 bridge_name: str = DEFAULT_BRIDGE, bip: str | None = None,
                 fixed_cidr: str | None = None, mtu: int | None = DEFAULT_MTU,
                 iptables: bool = True, ip_forward: bool = True, ip_masq: bool = True,
                 icc: bool = True, default_bind_ip: str = "0.0.0.0", ipv6: bool = False,
                 fixed_cidr_v6: str | None = None, ip6tables: bool = True,
                 host_id: str | None = None,
                 address_pools: Sequence[AddressPool] = (), dns: Sequence[str] = (),
                 actions: ActionTimer = NO_TIMER,
                 ids: IdMap = IDENTITY, plugins: PluginGetter | None = None) -> None:
        """host_id (the engine id) seeds the daemon's ULA prefix, the default pool of
        IPv6 subnets (moby's deriveULABaseNetwork); without it, an IPv6 network needs
        an explicit subnet. plugins: where network drivers and IPAM drivers other than
        the built-in ones are found (without it, none is)."""
        if len(bridge_name) > 15 or not bridge_name or "/" in bridge_name:
            raise InvalidParameter(f"invalid bridge name: {bridge_name!r}")
        opts = NetworkOptions(bridge_name, parse_interface(bip) if bip else None,
                              parse_network(fixed_cidr) if fixed_cidr else None,
                              mtu or DEFAULT_MTU, iptables, ip_forward, ip_masq, icc,
                              default_bind_ip, ipv6,
                              parse_network6(fixed_cidr_v6) if fixed_cidr_v6 else None,
                              iptables and ip6tables,
                              *_default_pools(address_pools), host_id, tuple(dns))
        self._state = NetworkState(store, events, os.path.join(exec_root, "netns"), opts,
                                   containers, tuple(on_bridge_removed), ids, plugins)
        # engine_daemon_network_actions_seconds: allocate (a container's sandbox),
        # connect (an endpoint), release (the sandbox and its endpoints)
        self._actions = actions

    # ------------------------------------------------------------ options

    @property
    def bridge_name(self) -> str:
        return self._state.opts.bridge_name

    @property
    def mtu(self) -> int:
        return self._state.opts.mtu

    @property
    def default_bind_ip(self) -> str:
        return self._state.opts.default_bind_ip

    @property
    def dns(self) -> EmbeddedDNS:
        return self._state.dns

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await lifecycle.start(self._state)

    async def stop(self) -> None:
        """Leave bridge, rules, sandboxes and veths in place (live-restore); only the
        embedded DNS sockets close (served again by reconcile() at the next start)."""
        await lifecycle.stop(self._state)

    async def cleanup(self) -> None:
        """Remove everything this daemon made: endpoints, sandboxes, chains, and the
        bridge if pydockerd created it. Used by tests and explicit teardown."""
        await lifecycle.cleanup(self._state)

    async def reconcile(self, live_container_ids: Collection[str]) -> None:
        """After a restart: release endpoints and sandboxes of containers that are gone."""
        await lifecycle.reconcile(self._state, live_container_ids)

    # ------------------------------------------------------------ queries

    def device(self, net: Network) -> str:
        """The Linux bridge of a bridge network."""
        return self._state.device(net)

    def get(self, name_or_id: str) -> Network:
        return self._state.get(name_or_id)

    def list(self, filters: Filters | None = None) -> Networks:
        nets = sorted(self._state.networks.values(), key=lambda n: n.name)
        return nfilters.apply(nets, filters or {}, lambda n: bool(self.attached(n.id)))

    def attached(self, network_id: str) -> Endpoints:
        return self._state.attached(network_id)

    def endpoints(self, container_id: str) -> Endpoints:
        return self._state.endpoints(container_id)

    def endpoint(self, container_id: str, network: str | None = None) -> Endpoint | None:
        for ep in self.endpoints(container_id):
            if network is None or ep.network_id == self.get(network).id:
                return ep
        return None

    def name_of(self, container_id: str) -> str:
        return self._state.name_of(container_id)

    def members(self, network_id: str) -> Members:
        """The containers attached to a network (network inspect's Containers)."""
        return [NetworkMember(ep, self._state.name_of(ep.container_id))
                for ep in self._state.attached(network_id)]

    @property
    def bridge_gateway(self) -> str | None:
        net = self._state.bridge_network()
        return net.gateway if net else None

    def dns_names(self, ep: Endpoint) -> StrList:
        """[name, short id, aliases...], as inspect's DNSNames shows them."""
        return self._state.dns_names(ep)

    # ------------------------------------------------------------ user-defined networks

    async def create_network(self, req: NetworkCreateRequest) -> Network:
        return await networks.create_network(self._state, req)

    async def remove_network(self, name_or_id: str) -> None:
        await networks.remove_network(self._state, name_or_id)

    async def prune(self, filters: Filters | None = None) -> Names:
        """Remove the user-defined networks without endpoints; their names."""
        return await networks.prune(self._state, filters)

    # ------------------------------------------------------------ sandboxes and endpoints

    async def create_sandbox(self, container_id: str) -> str:
        """A fresh network namespace for the container, pinned at a file; returns its path."""
        with timed(self._actions, "allocate"):
            return await eps.create_sandbox(self._state, container_id)

    def netns_path(self, container_id: str) -> str:
        return self._state.netns_path(container_id)

    def hand_over_sandbox(self, container_id: str, pid: int) -> None:
        """The container's process `pid` runs in its sandbox: the pin follows the
        process from now on (network/sandbox.hand_over)."""
        sandbox.hand_over(self._state.netns_path(container_id), pid)

    async def connect(self, container_id: str, netns_path: str, network: str = "bridge",
                      settings: EndpointSettings | None = None,
                      ports: PortOptions | None = None) -> Endpoint:
        """Join `network` with the client's EndpointSettings (address, aliases, MAC);
        `ports` (the container's exposed and published ports) go to a remote driver."""
        with timed(self._actions, "connect"):
            return await eps.connect(self._state, container_id, netns_path, network,
                                     settings, ports)

    async def disconnect(self, container_id: str, network: str | None = None) -> None:
        """Delete the container's veth(s) and release their leases; idempotent."""
        await eps.disconnect(self._state, container_id, network)

    async def release_sandbox(self, container_id: str) -> None:
        """disconnect() plus unmount and delete the namespace file; idempotent."""
        with timed(self._actions, "release"):
            await eps.release_sandbox(self._state, container_id)

    # ------------------------------------------------------------ container files

    def uses_embedded_dns(self, container_id: str) -> bool:
        return any(not n.predefined for e in self.endpoints(container_id)
                   if (n := self._state.networks.get(e.network_id)))

