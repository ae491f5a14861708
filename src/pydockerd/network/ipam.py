"""IPv4 address management: pools, allocation, default subnets, MACs. Pure logic."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from ..errors import Conflict, InvalidParameter, Unavailable

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address


def _candidate_subnets() -> Iterable[IPv4Net]:
    """Docker's default address pools, in the order it tries them."""
    for second in range(17, 32):
        yield IPv4Net(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield IPv4Net(f"192.168.{third}.0/20")


def choose_default_subnet(in_use: Iterable[IPv4Net]) -> IPv4Net:
    """The first default pool overlapping none of `in_use` (host routes, addresses)."""
    taken = [n for n in in_use if n.prefixlen > 0]   # the default route overlaps everything
    for cand in _candidate_subnets():
        if not any(cand.overlaps(n) for n in taken):
            return cand
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool "
                      "among the defaults to assign to the network")


def parse_interface(cidr: str) -> ipaddress.IPv4Interface:
    """Parse "--bip"-style "a.b.c.d/len" (host address + prefix)."""
    try:
        iface = ipaddress.IPv4Interface(cidr)
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {cidr}") from None
    if iface.network.prefixlen > 30:
        raise InvalidParameter(f"subnet {iface.network} is too small for a bridge network")
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise InvalidParameter(f"{cidr}: the gateway address cannot be the network or "
                               "broadcast address")
    return iface


def parse_network(cidr: str) -> IPv4Net:
    try:
        return IPv4Net(cidr, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {cidr}") from None


@dataclass(frozen=True, slots=True)
class Pool:
    """Addresses of one subnet a network may hand out."""

    subnet: IPv4Net
    gateway: IPv4Addr
    ip_range: IPv4Net | None = None     # --fixed-cidr: allocate only from here
    aux: frozenset[IPv4Addr] = frozenset()   # IPAM AuxiliaryAddresses: never allocated

    def __post_init__(self) -> None:
        if self.gateway not in self.subnet:
            raise InvalidParameter(f"gateway {self.gateway} is not in subnet {self.subnet}")
        if self.ip_range is not None and not self.ip_range.subnet_of(self.subnet):
            raise InvalidParameter(f"fixed-cidr {self.ip_range} is not within the bridge "
                                   f"subnet {self.subnet}")

    def reserved(self, ip: IPv4Addr) -> bool:
        """Gateway, network and broadcast addresses; also the first and last address of
        a --fixed-cidr range (so a container never gets a ".0" or ".255" address)."""
        edges = (self.subnet,) if self.ip_range is None or self.ip_range.prefixlen >= 31 \
            else (self.subnet, self.ip_range)
        return ip == self.gateway or any(
            ip in (n.network_address, n.broadcast_address) for n in edges)

    def contains(self, ip: IPv4Addr) -> bool:
        rng = self.ip_range or self.subnet
        return ip in rng and ip in self.subnet

    def allocate(self, used: set[IPv4Addr], preferred: IPv4Addr | None = None) -> IPv4Addr:
        """The preferred address if free, else the lowest free one in the range."""
        if preferred is not None:
            if preferred not in self.subnet:
                raise InvalidParameter(f"address {preferred} is not in subnet {self.subnet}")
            if self.reserved(preferred):
                raise InvalidParameter(f"address {preferred} is reserved in {self.subnet}")
            if preferred in used or preferred in self.aux:
                raise Conflict(f"Address already in use: {preferred}")
            return preferred
        rng = self.ip_range or self.subnet
        start = int(rng.network_address)
        end = int(rng.broadcast_address)
        for value in range(start, end + 1):
            ip = IPv4Addr(value)
            if ip not in used and ip not in self.aux and not self.reserved(ip):
                return ip
        raise Unavailable(f"no available IPv4 addresses on this network's address pools: "
                          f"{self.subnet}")


def mac_for_ip(ip: IPv4Addr) -> str:
    """Docker's generated MAC: 02:42 followed by the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def normalize_mac(mac: str) -> str:
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise InvalidParameter(f"invalid MAC address: {mac}")
    try:
        first = int(parts[0], 16)
        for p in parts:
            int(p, 16)
    except ValueError:
        raise InvalidParameter(f"invalid MAC address: {mac}") from None
    if first & 1:
        raise InvalidParameter(f"invalid MAC address: {mac} is a multicast address")
    return ":".join(p.lower() for p in parts)
