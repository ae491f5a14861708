"""`POST /networks/create` for user-defined bridge networks: request checks and address
planning, with dockerd's messages. Pure logic."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable

from ..errors import Forbidden, InvalidParameter, NotFound, NotImplementedErr
from ..models import IPAM, IPAMConfig, NetworkCreateRequest
from .ipam import Pool, choose_default_subnet
from .model import PREDEFINED

OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_MTU = "com.docker.network.driver.mtu"
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
    aux_addresses: dict[str, str] = field(default_factory=dict)   # IPAM AuxiliaryAddresses

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


def parse_request(body: NetworkCreateRequest) -> NetworkRequest:
    """The typed create request -> what create_network needs, checked as dockerd 28 does
    (libnetwork's name rule: only a blank name is refused; ValidateIPAM's messages)."""
    name = body.Name or ""
    if name in PREDEFINED:
        raise Forbidden(f"operation is not permitted on predefined {name} network")
    driver = body.Driver or "bridge"
    if driver in ("host", "null"):
        raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
    if driver != "bridge":
        raise NotFound(f"plugin \"{driver}\" not found")
    if not name.strip():
        raise InvalidParameter("invalid name: name is empty")
    if body.EnableIPv6:
        raise NotImplementedErr("IPv6 networks are not supported by pydockerd")
    if body.Ingress or body.ConfigOnly or (body.ConfigFrom and body.ConfigFrom.Network):
        raise NotImplementedErr("ingress and config-only networks are not supported")
    req = NetworkRequest(name, bool(body.Internal), bool(body.Attachable),
                         dict(body.Labels or {}), dict(body.Options or {}))
    ipam = body.IPAM or IPAM()
    if (ipam.Driver or "default") != "default":
        raise NotFound(f"plugin \"{ipam.Driver}\" not found")
    configs = list(ipam.Config or [])
    v4 = [c for c in configs if ":" not in (c.Subnet or "")]
    if len(configs) > len(v4):
        raise NotImplementedErr("IPv6 networks are not supported by pydockerd")
    errs = [e for c in v4 for e in validate_ipam_config(c)]
    if errs:
        raise InvalidParameter("invalid network config:\n" + (
            errs[0] if len(errs) == 1 else "* " + "\n* ".join(errs)))
    if len(v4) > 1:
        raise NotImplementedErr("pydockerd supports one IPv4 subnet per network")
    if v4:
        c = v4[0]
        req.subnet, req.gateway, req.ip_range = c.Subnet or "", c.Gateway or "", c.IPRange or ""
        req.aux_addresses = dict(c.AuxiliaryAddresses or {})
    bridge = req.options.get(OPT_BRIDGE_NAME, "")
    if bridge and not _IFNAME_RE.match(bridge):
        raise InvalidParameter(f"invalid bridge name {bridge!r}")
    req.icc, req.ip_masq          # noqa: B018 - validate the boolean options now
    return req


def _prefix(text: str) -> ipaddress.IPv4Network | None:
    """Go's netip.ParsePrefix for IPv4: "a.b.c.d/n", host bits allowed, nothing else."""
    addr, sep, bits = text.partition("/")
    if not sep or not bits.isdigit() or (len(bits) > 1 and bits[0] == "0"):
        return None
    try:
        return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(addr)}/{int(bits)}", strict=False)
    except ValueError:
        return None


def validate_ipam_config(c: IPAMConfig) -> list[str]:
    """moby's network.ValidateIPAM for one IPv4 config: its messages, in its order."""
    text = c.Subnet or ""
    subnet = _prefix(text)
    if subnet is None:
        return [f"invalid subnet {text}: invalid CIDR block notation"]
    errs = []
    if text.split("/")[0] != str(subnet.network_address):
        errs.append(f"invalid subnet {text}: it should be {subnet}")
    if c.IPRange:
        rng = _prefix(c.IPRange)
        if rng is None:
            errs.append(f"invalid ip-range {c.IPRange}: invalid CIDR block notation")
        else:
            if rng.prefixlen < subnet.prefixlen:
                errs.append(f"invalid ip-range {c.IPRange}: CIDR block is bigger than its "
                            f"parent subnet {subnet}")
            if c.IPRange.split("/")[0] != str(rng.network_address):
                errs.append(f"invalid ip-range {c.IPRange}: it should be {rng}")
            if not subnet.overlaps(rng):
                errs.append(f"invalid ip-range {c.IPRange}: parent subnet {subnet} doesn't "
                            "contain ip-range")
    labels = [(f"gateway {c.Gateway}", c.Gateway or "")]
    labels += [(f"auxiliary address {k}", v) for k, v in (c.AuxiliaryAddresses or {}).items()]
    for label, value in labels:
        if not value:
            continue
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            errs.append(f"invalid {label}: invalid address")
            continue
        if ip.version != 4:
            errs.append(f"invalid {label}: parent subnet is an IPv4 block")
        elif ip not in subnet:
            errs.append(f"invalid {label}: parent subnet {subnet} doesn't contain this address")
    return errs


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
    return Pool(subnet, gw, rng, reserve_aux(subnet, gw, req.aux_addresses))


def reserve_aux(subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address,
                aux: dict[str, str]) -> frozenset[ipaddress.IPv4Address]:
    """The auxiliary addresses, never given to a container. As libnetwork, one that is
    the gateway, the network or broadcast address or another auxiliary address is
    refused (dockerd: a 500 with this message; here a 400: it is the request's fault)."""
    taken = {gateway, subnet.network_address, subnet.broadcast_address}
    out: set[ipaddress.IPv4Address] = set()
    for key, value in aux.items():
        ip = ipaddress.IPv4Address(value)
        if ip in taken or ip in out:
            raise InvalidParameter(f"failed to allocate secondary ip address ({key}:{value}): "
                                   "Address already in use")
        out.add(ip)
    return frozenset(out)
