"""Published ports: Docker's PortBindings / ExposedPorts / PublishAllPorts rules.

Pure parsing and wire formats live here; `ContainerPorts` is the glue the
container service calls at start (after the network is up) and at teardown.
The actual mappings are recorded in `Container.ports` (HostConfig stays what
the user sent), so inspect and `docker ps` show them after a daemon restart.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..errors import InvalidParameter
from ..network.model import ExposedPort, PortBinding, PortOptions
from ..network.portmap import PortMapper, PortMapping
from .model import Container

log = logging.getLogger("pydockerd.ports")

PROTOS = ("tcp", "udp")


@dataclass(frozen=True)
class PortRequest:
    proto: str
    container_port: int
    host_ip: str            # "" = the daemon's default (--ip)
    host_port_min: int      # 0 = an ephemeral port
    host_port_max: int


def split_port_key(key: str) -> tuple[int, str]:
    """"80/tcp" -> (80, "tcp"); raises InvalidParameter as dockerd does."""
    num, _, proto = str(key).partition("/")
    proto = (proto or "tcp").lower()
    port = _port_number(num)
    if port is None or port == 0:
        raise InvalidParameter(f'invalid port specification: "{key}"')
    if proto not in PROTOS:
        if proto == "sctp":
            raise InvalidParameter("publishing sctp ports is not supported by pydockerd")
        raise InvalidParameter(f'invalid port specification: "{key}"')
    return port, proto


def _port_number(text: str) -> int | None:
    if not text.isdigit() or len(text) > 5:
        return None
    n = int(text)
    return n if n <= 65535 else None


def parse_host_port(text: str) -> tuple[int, int]:
    """"" -> (0, 0); "8080" -> (8080, 8080); "8000-8010" -> (8000, 8010)."""
    if not text:
        return 0, 0
    lo_s, sep, hi_s = text.partition("-")
    lo, hi = _port_number(lo_s), _port_number(hi_s) if sep else _port_number(lo_s)
    if lo is None or hi is None or hi < lo:
        raise InvalidParameter(f'invalid port specification: "{text}"')
    return lo, hi


def validate_port_bindings(hc: dict[str, Any]) -> None:
    """Create-time checks (dockerd's validatePortBindings and network-mode rules)."""
    bindings = hc.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise InvalidParameter("invalid PortBindings")
    for key, pbs in bindings.items():
        split_port_key(key)
        for pb in pbs or []:
            parse_host_port(str((pb or {}).get("HostPort") or ""))
            _check_host_ip(str((pb or {}).get("HostIp") or ""))
    mode = str(hc.get("NetworkMode") or "")
    if mode.startswith("container:") and (any(bindings.values()) or hc.get("PublishAllPorts")):
        raise InvalidParameter("conflicting options: port publishing and the container type "
                               "network mode")


def _check_host_ip(ip: str) -> None:
    if not ip:
        return
    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise InvalidParameter(f"invalid host IP address: {ip}") from None


def requests_for(c: Container) -> list[PortRequest]:
    """What the container asks to publish: its PortBindings, plus every ExposedPort
    without a binding on an ephemeral port when PublishAllPorts is set."""
    hc, out = c.host_config, []
    bound: set[tuple[int, str]] = set()
    for key, pbs in sorted((hc.get("PortBindings") or {}).items()):
        port, proto = split_port_key(key)
        for pb in pbs or []:
            lo, hi = parse_host_port(str(pb.get("HostPort") or ""))
            out.append(PortRequest(proto, port, str(pb.get("HostIp") or "").strip("[]"), lo, hi))
            bound.add((port, proto))
    if hc.get("PublishAllPorts"):
        for key in sorted(c.config.get("ExposedPorts") or {}):
            port, proto = split_port_key(key)
            if (port, proto) not in bound:
                out.append(PortRequest(proto, port, "", 0, 0))
    return out


def port_options(c: Container) -> PortOptions:
    """The container's ports as a remote network driver gets them with its endpoint."""
    exposed = tuple(ExposedPort(proto, port) for port, proto in
                    (split_port_key(k) for k in _exposed_keys(c)))
    return PortOptions(exposed, tuple(PortBinding(r.proto, r.container_port, r.host_ip,
                                                  r.host_port_min, r.host_port_max)
                                      for r in requests_for(c)))


# ------------------------------------------------------------------ wire formats

def _exposed_keys(c: Container) -> list[str]:
    exposed, bindings = c.config.get("ExposedPorts"), c.host_config.get("PortBindings")
    if not exposed and not bindings:         # most containers: `docker ps` asks each one
        return []
    keys = {f"{p}/{proto}" for p, proto in (split_port_key(k) for k in (exposed or {}))}
    for k in bindings or {}:
        p, proto = split_port_key(k)
        keys.add(f"{p}/{proto}")
    return sorted(keys)


def inspect_ports(c: Container) -> dict[str, Any]:
    """NetworkSettings.Ports: {"80/tcp": [{"HostIp", "HostPort"}] or None}; {} unless running."""
    if not c.state.running or not c.endpoints:
        return {}
    out: dict[str, Any] = {k: None for k in _exposed_keys(c)}
    for m in c.ports:
        key = f"{m.container_port}/{m.proto}"
        entry = {"HostIp": m.host_ip, "HostPort": str(m.host_port)}
        if out.get(key) is None:
            out[key] = []
        out[key].append(entry)
    return out


def summary_ports(c: Container) -> list[dict[str, Any]]:
    """The `Ports` list of GET /containers/json (what `docker ps` renders)."""
    if not c.state.running or not c.endpoints:
        return []
    out: list[dict[str, Any]] = []
    published = set()
    for m in c.ports:
        out.append({"IP": m.host_ip, "PrivatePort": m.container_port,
                    "PublicPort": m.host_port, "Type": m.proto})
        published.add(f"{m.container_port}/{m.proto}")
    for key in _exposed_keys(c):
        if key not in published:
            port, proto = split_port_key(key)
            out.append({"PrivatePort": port, "Type": proto})
    return out


# ------------------------------------------------------------------ glue

class ContainerPorts:
    """Publishes a container's ports at start and releases them at teardown."""

    def __init__(self, mapper: PortMapper, bridge_of: Callable[[str], str | None],
                 plugin_publishes: Callable[[str], bool] = lambda _nid: False) -> None:
        self.mapper = mapper
        self._bridge_of = bridge_of          # network id -> bridge device (None: no bridge)
        # network id -> its remote (plugin) driver publishes the ports, as with dockerd,
        # which hands them to the plugin with the endpoint and publishes nothing itself
        self._plugin_publishes = plugin_publishes

    async def publish(self, c: Container) -> None:
        reqs = requests_for(c)
        if not reqs or not c.endpoints:
            return                           # host / none networking: nothing to publish
        ep = c.endpoints[0]
        if self._plugin_publishes(ep.network_id):
            return
        bridge = self._bridge_of(ep.network_id)
        c.ports = await self.mapper.publish(
            c.id, f"{c.name} ({ep.endpoint_id[:12]})", bridge, ep.ip,
            [(r.proto, r.container_port, r.host_ip, r.host_port_min, r.host_port_max)
             for r in reqs], ep.ip6)

    async def unpublish(self, c: Container) -> None:
        if c.ports:
            ports, c.ports = c.ports, []
            await self.mapper.unpublish(c.id, ports)

    async def restore(self, running: Iterable[Container]) -> None:
        """Daemon start: keep (or respawn) the proxies of live containers and rebuild
        the iptables chains from their recorded mappings."""
        live = [c for c in running if c.ports and c.endpoints]
        by_bridge: dict[str, list[tuple[str, PortMapping]]] = {}
        for c in live:
            await self.mapper.ensure_proxies(c.id, c.ports)
            bridge = self._bridge_of(c.endpoints[0].network_id)
            if bridge:
                by_bridge.setdefault(bridge, []).extend((c.id, m) for m in c.ports)
        await self.mapper.rebuild_rules(by_bridge)
