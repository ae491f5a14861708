"""`POST /networks/create` for user-defined bridge networks: request checks and address
planning, with dockerd's messages. Pure logic."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import Forbidden, InvalidParameter, NotFound, NotImplementedErr
from ..models import IPAM, IPAMConfig, NetworkCreateRequest
from .ipam import (DEFAULT_POOLS4, AddressPool, IPAddr, IPNet, Pool, choose_default_subnet,
                   choose_default_subnet6)
from .model import PREDEFINED

OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_ENABLE_IPV6 = "com.docker.network.enable_ipv6"
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
    ipv6: bool = False
    subnet6: str = ""
    gateway6: str = ""
    ip_range6: str = ""
    aux_addresses6: dict[str, str] = field(default_factory=dict)
    driver: str = "bridge"                   # or a network plugin's name
    ipam_driver: str = "default"             # or an IPAM plugin's name
    ipam_options: dict[str, str] = field(default_factory=dict)
    ipam_options_set: bool = False           # IPAM.Options was in the request (even {})

    @property
    def user_subnet(self) -> bool:
        return bool(self.subnet or self.subnet6)

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


def _bool_opt(opts: dict[str, str], key: str, default: bool, kind: str = "") -> bool:
    v = opts.get(key, "")
    if v == "":
        return default
    if v.lower() in ("true", "1", "t"):
        return True
    if v.lower() in ("false", "0", "f"):
        return False
    if kind:
        raise InvalidParameter(f"{kind} \"{key}\" is not a valid bool")
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
    if not name.strip():
        raise InvalidParameter("invalid name: name is empty")
    if body.Ingress or body.ConfigOnly or (body.ConfigFrom and body.ConfigFrom.Network):
        raise NotImplementedErr("ingress and config-only networks are not supported")
    options = dict(body.Options or {})
    if body.EnableIPv6 is not None:
        ipv6 = body.EnableIPv6              # moby: the field wins over the driver option
        options.pop(OPT_ENABLE_IPV6, None)
    else:
        ipv6 = _bool_opt(options, OPT_ENABLE_IPV6, False, "driver-opt")
    ipam = body.IPAM or IPAM()
    req = NetworkRequest(name, bool(body.Internal), bool(body.Attachable),
                         dict(body.Labels or {}), options, ipv6=ipv6, driver=driver,
                         ipam_driver=ipam.Driver or "default",
                         ipam_options=dict(ipam.Options or {}),
                         ipam_options_set=ipam.Options is not None)
    for plugin in (driver, req.ipam_driver):
        if not plugin.strip():                 # never a plugin's name
            raise NotFound(f"plugin \"{plugin}\" not found")
    configs = list(ipam.Config or [])
    v4 = [c for c in configs if ":" not in (c.Subnet or "")]
    # moby 28: an IPv6 subnet on a network without IPv6 is dropped, not checked
    v6 = [c for c in configs if ":" in (c.Subnet or "")] if ipv6 else []
    errs = [e for c in v4 + v6 for e in validate_ipam_config(c)]
    if errs:
        raise InvalidParameter("invalid network config:\n" + (
            errs[0] if len(errs) == 1 else "* " + "\n* ".join(errs)))
    if len(v4) > 1 or len(v6) > 1:
        if driver == "bridge":
            raise Forbidden("bridge driver doesn't support multiple subnets")
        raise NotImplementedErr("pydockerd supports one IPv4 and one IPv6 subnet per "
                                "network")
    if v4:
        c = v4[0]
        req.subnet, req.gateway, req.ip_range = c.Subnet or "", c.Gateway or "", c.IPRange or ""
        req.aux_addresses = dict(c.AuxiliaryAddresses or {})
    if v6:
        c = v6[0]
        req.subnet6, req.gateway6 = c.Subnet or "", c.Gateway or ""
        req.ip_range6, req.aux_addresses6 = c.IPRange or "", dict(c.AuxiliaryAddresses or {})
    bridge = req.options.get(OPT_BRIDGE_NAME, "") if driver == "bridge" else ""
    if bridge and not _IFNAME_RE.match(bridge):
        raise InvalidParameter(f"invalid bridge name {bridge!r}")
    if driver == "bridge":
        req.icc, req.ip_masq      # noqa: B018 - validate the boolean options now
    return req


def _prefix(text: str) -> IPNet | None:
    """Go's netip.ParsePrefix: "addr/n", host bits allowed, nothing else (no zone)."""
    addr, sep, bits = text.partition("/")
    if not sep or not bits.isdigit() or (len(bits) > 1 and bits[0] == "0") or "%" in addr:
        return None
    try:
        return ipaddress.ip_network(f"{ipaddress.ip_address(addr)}/{int(bits)}", strict=False)
    except ValueError:
        return None


def _canonical(text: str, net: IPNet) -> bool:
    """Is the address part of `text` the network address (no host bits set)?"""
    return ipaddress.ip_address(text.split("/")[0]) == net.network_address


def validate_ipam_config(c: IPAMConfig) -> list[str]:
    """moby's validateIpamConfig for one IPv4 or IPv6 config: its messages, in its order."""
    text = c.Subnet or ""
    subnet = _prefix(text)
    if subnet is None:
        return [f"invalid subnet {text}: invalid CIDR block notation"]
    fam = subnet.version
    errs = []
    if not _canonical(text, subnet):
        errs.append(f"invalid subnet {text}: it should be {subnet}")
    if c.IPRange:
        rng = _prefix(c.IPRange)
        if rng is None:
            errs.append(f"invalid ip-range {c.IPRange}: invalid CIDR block notation")
        elif rng.version != fam:
            errs.append(f"invalid ip-range {c.IPRange}: parent subnet is an IPv{fam} block")
        else:
            if rng.prefixlen < subnet.prefixlen:
                errs.append(f"invalid ip-range {c.IPRange}: CIDR block is bigger than its "
                            f"parent subnet {subnet}")
            if not _canonical(c.IPRange, rng):
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
        if ip.version != fam:
            errs.append(f"invalid {label}: parent subnet is an IPv{fam} block")
        elif ip not in subnet:
            errs.append(f"invalid {label}: parent subnet {subnet} doesn't contain this address")
    return errs


def plan_pool(req: NetworkRequest, in_use: Iterable[ipaddress.IPv4Network],
              ours: Iterable[ipaddress.IPv4Network],
              pools: Sequence[AddressPool] = DEFAULT_POOLS4) -> Pool:
    """The network's subnet, gateway and range: requested (checked against our other
    networks) or the first free subnet of the default address pools."""
    ours = list(ours)
    if not req.subnet:
        net = choose_default_subnet([*in_use, *ours], pools)
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


def plan_pool6(req: NetworkRequest, pools: Sequence[AddressPool], in_use: Iterable[IPNet],
               ours: Iterable[IPNet]) -> Pool:
    """The IPv6 subnet of a network created with --ipv6: the requested one (checked
    against our other networks' IPv6 subnets, as dockerd's address space) or the first
    free subnet of the IPv6 default pools (moby 27+: /64s of the daemon's ULA prefix). Checked by validate_ipam_config
    already, so the texts parse."""
    ours = [o for o in ours if o.version == 6]
    if not req.subnet6:
        net = choose_default_subnet6(pools, [*in_use, *ours])
        return Pool(net, net[1])
    subnet = ipaddress.IPv6Network(req.subnet6)
    if subnet.prefixlen > 126:
        raise InvalidParameter(f"subnet {subnet} is too small for a bridge network")
    if any(subnet.overlaps(o) for o in ours):
        raise Forbidden("Pool overlaps with other one on this address space")
    # not dockerd's check: a bridge route over the host's own IPv6 networks (or its
    # default route, ::/0) would take the host's IPv6 traffic
    clash = next((h for h in in_use if h.version == 6 and subnet.overlaps(h)), None)
    if clash is not None or subnet.prefixlen == 0 or subnet.is_loopback \
            or subnet.is_link_local or subnet.is_multicast:
        raise Forbidden(f"IPv6 subnet {subnet} overlaps the host's networks "
                        f"({clash or 'reserved'})")
    rng = ipaddress.IPv6Network(req.ip_range6) if req.ip_range6 else None
    gw = ipaddress.IPv6Address(req.gateway6) if req.gateway6 else subnet[1]
    if gw == subnet.network_address:
        raise InvalidParameter(f"gateway {gw} is the subnet-router anycast address of "
                               f"{subnet}")
    return Pool(subnet, gw, rng, reserve_aux(subnet, gw, req.aux_addresses6))


def reserve_aux(subnet: IPNet, gateway: IPAddr, aux: dict[str, str]) -> frozenset[IPAddr]:
    """The auxiliary addresses, never given to a container. As libnetwork, one that is
    the gateway, the network or broadcast address or another auxiliary address is
    refused (dockerd: a 500 with this message; here a 400: it is the request's fault)."""
    taken = {gateway, subnet.network_address}
    if subnet.version == 4:
        taken.add(subnet.broadcast_address)
    out: set[IPAddr] = set()
    for key, value in aux.items():
        ip = ipaddress.ip_address(value)
        if ip in taken or ip in out:
            raise InvalidParameter(f"failed to allocate secondary ip address ({key}:{value}): "
                                   "Address already in use")
        out.add(ip)
    return frozenset(out)
