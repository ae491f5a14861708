"""`POST /networks/create` for user-defined bridge networks: request checks and address
planning, with dockerd's messages. Pure logic."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import Forbidden, InvalidParameter, NotFound, NotImplementedErr
from .ipam import Pool, choose_default_subnet
from .model import PREDEFINED

OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_MTU = "com.docker.network.driver.mtu"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_IFNAME_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")


@dataclass
class NetworkRequest:
    name: str
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""

    @property
    def icc(self) -> bool:
        return _bool_opt(self.options, OPT_ICC, True)

    @property
    def ip_masq(self) -> bool:
        return _bool_opt(self.options, OPT_MASQ, True)

    def mtu(self, default: int) -> int:
        v = self.options.get(OPT_MTU, "")
        if not v:
            return default
        try:
            mtu = int(v)
        except ValueError:
            raise InvalidParameter(f"invalid MTU {v!r}") from None
        if not 68 <= mtu <= 65535:
            raise InvalidParameter(f"invalid MTU {mtu}: must be between 68 and 65535")
        return mtu


def _bool_opt(opts: dict[str, str], key: str, default: bool) -> bool:
    v = opts.get(key, "")
    if v == "":
        return default
    if v.lower() in ("true", "1"):
        return True
    if v.lower() in ("false", "0"):
        return False
    raise InvalidParameter(f"failed to parse {key}={v!r}: invalid syntax")


def _str_map(v: Any, what: str) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise InvalidParameter(f"invalid {what}: expected an object")
    return {str(k): str(x) for k, x in v.items()}


def parse_request(body: Any) -> NetworkRequest:
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    name = body.get("Name") or ""
    if not isinstance(name, str) or not name:
        raise InvalidParameter("network name is required")
    if not _NAME_RE.match(name):
        raise InvalidParameter(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                               "are allowed")
    driver = body.get("Driver") or "bridge"
    if driver in ("host", "null") or (name in PREDEFINED and driver == "bridge"):
        raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
    if driver != "bridge":
        raise NotFound(f"plugin \"{driver}\" not found")
    if body.get("EnableIPv6"):
        raise NotImplementedErr("IPv6 networks are not supported by pydockerd")
    if body.get("Ingress") or body.get("ConfigOnly") or (body.get("ConfigFrom") or {}).get(
            "Network"):
        raise NotImplementedErr("ingress and config-only networks are not supported")
    req = NetworkRequest(name, bool(body.get("Internal")), bool(body.get("Attachable")),
                         _str_map(body.get("Labels"), "labels"),
                         _str_map(body.get("Options"), "options"))
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise InvalidParameter("invalid IPAM: expected an object")
    if (ipam.get("Driver") or "default") != "default":
        raise NotFound(f"plugin \"{ipam['Driver']}\" not found")
    configs = [c for c in ipam.get("Config") or [] if isinstance(c, dict)]
    v4 = [c for c in configs if ":" not in (c.get("Subnet") or "")]
    if len(v4) > 1:
        raise NotImplementedErr("pydockerd supports one IPv4 subnet per network")
    if len(configs) > len(v4):
        raise NotImplementedErr("IPv6 networks are not supported by pydockerd")
    if v4:
        c = v4[0]
        req.subnet, req.gateway, req.ip_range = (c.get("Subnet") or "", c.get("Gateway") or "",
                                                 c.get("IPRange") or "")
        if not req.subnet and (req.gateway or req.ip_range):
            raise InvalidParameter("ip-range and gateway require a subnet")
    bridge = req.options.get(OPT_BRIDGE_NAME, "")
    if bridge and not _IFNAME_RE.match(bridge):
        raise InvalidParameter(f"invalid bridge name {bridge!r}")
    req.icc, req.ip_masq          # noqa: B018 - validate the boolean options now
    return req


def plan_pool(req: NetworkRequest, in_use: Iterable[ipaddress.IPv4Network],
              ours: Iterable[ipaddress.IPv4Network]) -> Pool:
    """The network's subnet, gateway and range: requested (checked against our other
    networks) or the first free default pool."""
    ours = list(ours)
    if not req.subnet:
        net = choose_default_subnet([*in_use, *ours])
        return Pool(net, net[1])
    try:
        subnet = ipaddress.IPv4Network(req.subnet, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid subnet {req.subnet}: invalid CIDR address") from None
    if subnet.prefixlen > 30:
        raise InvalidParameter(f"subnet {subnet} is too small for a bridge network")
    if any(subnet.overlaps(o) for o in ours):
        raise Forbidden("Pool overlaps with other one on this address space")
    rng = None
    if req.ip_range:
        try:
            rng = ipaddress.IPv4Network(req.ip_range, strict=False)
        except ValueError:
            raise InvalidParameter(f"invalid ip-range {req.ip_range}: invalid CIDR address") \
                from None
        if not rng.subnet_of(subnet):
            raise InvalidParameter(f"no matching subnet for range {req.ip_range}")
    if req.gateway:
        try:
            gw = ipaddress.IPv4Address(req.gateway)
        except ValueError:
            raise InvalidParameter(f"invalid gateway address {req.gateway}") from None
        if gw not in subnet:
            raise InvalidParameter(f"no matching subnet for gateway {req.gateway}")
        if gw in (subnet.network_address, subnet.broadcast_address):
            raise InvalidParameter(f"gateway {gw} is the network or broadcast address of "
                                   f"{subnet}")
    else:
        gw = subnet[1]
    return Pool(subnet, gw, rng)
