"""Address management: IPv4 and IPv6 pools, allocation, default subnets, MACs. Pure logic."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

from ..errors import Conflict, InvalidParameter, Unavailable
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
else:   # OpenSSL's digests: loaded by the first one (issue 10: idle memory)
    hashlib = lazy_import("hashlib")

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address
IPv6Net = ipaddress.IPv6Network
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class AddressPool:
    """One default address pool: `base` split into subnets of /`size` (moby's
    ipamutils.NetworkToSplit; `--default-address-pool base=...,size=...`)."""

    base: IPNet
    size: int

    def subnets(self) -> Iterator[IPNet]:
        return iter(self.base.subnets(new_prefix=self.size))


# moby's local-scope defaults, in the order it tries them
DEFAULT_POOLS4 = tuple(AddressPool(IPv4Net(b), s) for b, s in (
    ("172.17.0.0/16", 16), ("172.18.0.0/16", 16), ("172.19.0.0/16", 16),
    ("172.20.0.0/14", 16), ("172.24.0.0/14", 16), ("172.28.0.0/14", 16),
    ("192.168.0.0/16", 20)))


def parse_pool_flag(value: str) -> dict[str, object]:
    """`--default-address-pool base=10.10.0.0/16,size=24` as moby's PoolsOpt.Set reads
    it (keys case-insensitive), into daemon.json's form {"base": ..., "size": ...}."""
    out: dict[str, object] = {}
    for field in value.split(","):
        key, sep, val = field.lower().partition("=")
        if not sep:
            raise InvalidParameter(f"invalid field '{field}' must be a key=value pair")
        if key == "base":
            try:
                ipaddress.ip_network(val, strict=False)
            except ValueError:
                raise InvalidParameter(f'invalid base prefix "{val}"') from None
            out["base"] = val
        elif key == "size":
            try:
                out["size"] = int(val)
            except ValueError:
                raise InvalidParameter(f'invalid size value: "{value}" (must be integer)') \
                    from None
        else:
            raise InvalidParameter(f"unexpected key '{key}' in '{field}'")
    return out


def address_pools(entries: Iterable[object]) -> tuple[AddressPool, ...]:
    """`default-address-pools` (daemon.json's objects, or the parsed flags), checked as
    moby's allocator checks them at start-up."""
    out = []
    for i, e in enumerate(entries):
        base_s = e.get("base") if isinstance(e, dict) else None
        size = e.get("size") if isinstance(e, dict) else None
        try:
            base: IPNet = ipaddress.ip_network(str(base_s), strict=False)
        except ValueError:
            base_s = None
        if not isinstance(base_s, str) or not isinstance(size, int) \
                or isinstance(size, bool) or not 0 < size <= base.max_prefixlen:
            raise InvalidParameter(f"network at index {i} ({base_s} {size}) is not in "
                                   "canonical form")
        if base.prefixlen > size:
            raise InvalidParameter(
                f"network at index {i} ({base} {size}) has a smaller prefix "
                f"(/{base.prefixlen}) than the target size of that pool (/{size})")
        out.append(AddressPool(base, size))
    return tuple(out)


def _choose(pools: Iterable[AddressPool], in_use: Iterable[IPNet], version: int) -> IPNet:
    # the default route overlaps everything: it is left out
    taken = [n for n in in_use if n.version == version and n.prefixlen > 0]
    for pool in pools:
        if pool.base.version == version:
            for cand in pool.subnets():
                if not any(cand.overlaps(n) for n in taken):
                    return cand
    raise Unavailable(f"could not find an available, non-overlapping IPv{version} address "
                      "pool among the defaults to assign to the network")


def choose_default_subnet(in_use: Iterable[IPNet],
                          pools: Iterable[AddressPool] = DEFAULT_POOLS4) -> IPv4Net:
    """The first IPv4 subnet of the pools overlapping none of `in_use` (host routes and
    addresses, our other networks)."""
    net = _choose(pools, in_use, 4)
    assert isinstance(net, IPv4Net)
    return net


def ula_base(host_id: str) -> IPv6Net:
    """The daemon's own ULA /48, as moby's deriveULABaseNetwork: fd00::/8 plus the 40
    low bits of sha256(host id) as the Global ID (RFC 4193 3.2.2, loosely). Without
    IPv6 default address pools, networks created with --ipv6 and no IPv6 subnet get
    /64s of it."""
    gid = int.from_bytes(hashlib.sha256(host_id.encode()).digest()[:8], "big") & (1 << 40) - 1
    return IPv6Net((int(ipaddress.IPv6Address("fd00::")) + (gid << 80), 48))


def choose_default_subnet6(pools: Iterable[AddressPool], in_use: Iterable[IPNet]) -> IPv6Net:
    """The first IPv6 subnet of the pools overlapping none of `in_use`."""
    net = _choose(pools, in_use, 6)
    assert isinstance(net, IPv6Net)
    return net


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


def parse_network6(cidr: str) -> IPv6Net:
    """--fixed-cidr-v6: an IPv6 CIDR (host bits dropped), at most a /126."""
    try:
        net = IPv6Net(cidr, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {cidr}") from None
    if net.prefixlen > 126:
        raise InvalidParameter(f"subnet {net} is too small for a bridge network")
    return net


@dataclass(frozen=True, slots=True)
class Pool:
    """Addresses of one subnet (IPv4 or IPv6) a network may hand out."""

    subnet: IPNet
    gateway: IPAddr
    ip_range: IPNet | None = None       # --fixed-cidr / --ip-range: allocate only from here
    aux: frozenset[IPAddr] = frozenset()     # IPAM AuxiliaryAddresses: never allocated

    def __post_init__(self) -> None:
        if self.gateway not in self.subnet:
            raise InvalidParameter(f"gateway {self.gateway} is not in subnet {self.subnet}")
        rng = self.ip_range
        if rng is not None and not (rng.network_address in self.subnet
                                    and rng.broadcast_address in self.subnet):
            raise InvalidParameter(f"fixed-cidr {self.ip_range} is not within the bridge "
                                   f"subnet {self.subnet}")

    def reserved(self, ip: IPAddr) -> bool:
        """Gateway, network and broadcast addresses; also the first and last address of
        a --fixed-cidr range (so a container never gets a ".0" or ".255" address).
        IPv6 has no broadcast: only the gateway and the subnet-router anycast address
        (the subnet's first address) are reserved, as libnetwork's allocator."""
        if self.subnet.version == 6:
            return ip == self.gateway or ip == self.subnet.network_address
        edges = (self.subnet,) if self.ip_range is None or self.ip_range.prefixlen >= 31 \
            else (self.subnet, self.ip_range)
        return ip == self.gateway or any(
            ip in (n.network_address, n.broadcast_address) for n in edges)

    def contains(self, ip: IPAddr) -> bool:
        rng = self.ip_range or self.subnet
        return ip in rng and ip in self.subnet

    def allocate(self, used: set[IPAddr], preferred: IPAddr | None = None) -> IPAddr:
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
        make = IPv4Addr if self.subnet.version == 4 else ipaddress.IPv6Address
        # at most len(used) + len(aux) + 3 steps: the lowest free address is found fast
        for value in range(start, end + 1):
            ip = make(value)
            if ip not in used and ip not in self.aux and not self.reserved(ip):
                return ip
        raise Unavailable(f"no available IPv{self.subnet.version} addresses on this "
                          f"network's address pools: {self.subnet}")


def parse_ip6(text: str) -> ipaddress.IPv6Address:
    """An endpoint's IPv6Address (--ip6), as moby's normalizeEndpointIPAMConfig accepts
    it: an IPv6 address, not IPv4-mapped, not unspecified, no zone."""
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        raise InvalidParameter(f"invalid IPv6 address: {text}") from None
    if addr.ipv4_mapped is not None or addr.is_unspecified or addr.scope_id:
        raise InvalidParameter(f"invalid IPv6 address: {text}")
    return addr


def mac_for_ip(ip: IPAddr) -> str:
    """Docker's generated MAC: 02:42 followed by the (last) four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed[-4:])


def random_mac() -> str:
    """A random MAC in Docker's 02:42 prefix (dockerd's GenerateRandomMAC): for an
    endpoint whose address comes from an IPAM plugin, before the address is known."""
    return "02:42:" + ":".join(f"{b:02x}" for b in os.urandom(4))


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
