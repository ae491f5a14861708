"""IPAM: pools, allocation order, reserved addresses, default subnets, MACs."""
from __future__ import annotations

import ipaddress

import pytest

from pydockerd.errors import Conflict, InvalidParameter, Unavailable
from pydockerd.network.ipam import (DEFAULT_POOLS4, AddressPool, Pool, address_pools,
                                    choose_default_subnet, mac_for_ip, normalize_mac,
                                    parse_interface, parse_pool_flag)

A = ipaddress.IPv4Address
N = ipaddress.IPv4Network


def pool(bip: str = "10.199.0.1/24", fixed: str | None = None) -> Pool:
    iface = parse_interface(bip)
    return Pool(iface.network, iface.ip, N(fixed) if fixed else None)


def test_first_address_skips_network_and_gateway() -> None:
    assert pool().allocate(set()) == A("10.199.0.2")


def test_gateway_not_first() -> None:
    p = pool("10.199.0.5/24")
    assert p.allocate(set()) == A("10.199.0.1")
    assert p.allocate({A("10.199.0.1"), A("10.199.0.2"), A("10.199.0.3"),
                       A("10.199.0.4")}) == A("10.199.0.6")


def test_lowest_free_reused_after_release() -> None:
    p = pool()
    used: set[ipaddress.IPv4Address] = set()
    for _ in range(3):
        used.add(p.allocate(used))
    assert used == {A("10.199.0.2"), A("10.199.0.3"), A("10.199.0.4")}
    used.discard(A("10.199.0.3"))
    assert p.allocate(used) == A("10.199.0.3")


def test_exhaustion_excludes_broadcast() -> None:
    p = pool("10.199.0.1/29")          # .0 net, .1 gw, .7 broadcast -> .2-.6
    used: set[ipaddress.IPv4Address] = set()
    for _ in range(5):
        used.add(p.allocate(used))
    assert A("10.199.0.7") not in used
    with pytest.raises(Unavailable):
        p.allocate(used)


def test_fixed_cidr_restricts_pool() -> None:
    p = pool("10.199.0.1/24", "10.199.0.128/25")
    assert p.allocate(set()) == A("10.199.0.129")
    assert p.contains(A("10.199.0.200")) and not p.contains(A("10.199.0.3"))


def test_fixed_cidr_containing_gateway_and_broadcast() -> None:
    p = pool("10.199.0.1/24", "10.199.0.0/24")
    assert p.allocate(set()) == A("10.199.0.2")
    used = {A(f"10.199.0.{i}") for i in range(2, 255)}
    with pytest.raises(Unavailable):
        p.allocate(used)


def test_fixed_cidr_edges_excluded() -> None:
    p = pool("10.199.0.1/16", "10.199.5.0/24")
    used: set[ipaddress.IPv4Address] = set()
    for _ in range(254):
        used.add(p.allocate(used))
    assert min(used) == A("10.199.5.1") and max(used) == A("10.199.5.254")
    with pytest.raises(Unavailable):
        p.allocate(used)


def test_fixed_cidr_outside_subnet_rejected() -> None:
    with pytest.raises(InvalidParameter):
        pool("10.199.0.1/24", "10.200.0.0/25")


def test_preferred_address() -> None:
    p = pool()
    assert p.allocate(set(), A("10.199.0.50")) == A("10.199.0.50")
    with pytest.raises(Conflict):
        p.allocate({A("10.199.0.50")}, A("10.199.0.50"))
    with pytest.raises(InvalidParameter):
        p.allocate(set(), A("10.199.0.1"))
    with pytest.raises(InvalidParameter):
        p.allocate(set(), A("10.1.0.5"))


@pytest.mark.parametrize("bad", ["10.199.0.0/24", "10.199.0.255/24", "nonsense", "10.0.0.1/31",
                                 "10.0.0.1/33"])
def test_parse_interface_rejects(bad: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_interface(bad)


def test_default_subnet_avoids_host_routes() -> None:
    assert choose_default_subnet([]) == N("172.17.0.0/16")
    taken = [N("0.0.0.0/0"), N("172.17.0.0/16"), N("172.18.5.0/24"), N("192.0.2.0/24")]
    assert choose_default_subnet(taken) == N("172.19.0.0/16")
    everything_172 = [N("172.16.0.0/12")]
    assert choose_default_subnet(everything_172) == N("192.168.0.0/20")
    with pytest.raises(Unavailable):
        choose_default_subnet([N("172.16.0.0/12"), N("192.168.0.0/16")])


def test_default_pools_are_mobys_in_order() -> None:
    subnets = [str(s) for p in DEFAULT_POOLS4 for s in p.subnets()]
    assert subnets[:15] == [f"172.{i}.0.0/16" for i in range(17, 32)]
    assert subnets[15:] == [f"192.168.{i}.0/20" for i in range(0, 256, 16)]


def test_configured_pools_split_by_size() -> None:
    pools = address_pools([parse_pool_flag("base=10.10.0.0/16,size=24"),
                           {"base": "10.20.0.0/23", "size": 24}])
    assert choose_default_subnet([], pools) == N("10.10.0.0/24")
    assert choose_default_subnet([N("10.10.0.0/24"), N("10.10.1.128/25")], pools) \
        == N("10.10.2.0/24")
    assert choose_default_subnet([N("10.10.0.0/16")], pools) == N("10.20.0.0/24")
    with pytest.raises(Unavailable, match="IPv4 address pool"):
        choose_default_subnet([N("10.0.0.0/8")], pools)


@pytest.mark.parametrize("flag,message", [
    ("base=10.0.0.0/8,size=x", 'invalid size value: "base=10.0.0.0/8,size=x" (must be integer)'),
    ("base=10.0.0.0/8,sz=24", "unexpected key 'sz' in 'sz=24'"),
    ("base", "invalid field 'base' must be a key=value pair"),
    ("base=10.0.0/8,size=24", 'invalid base prefix "10.0.0/8"'),
])
def test_pool_flag_errors(flag: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        parse_pool_flag(flag)
    assert e.value.message == message


@pytest.mark.parametrize("entry,message", [
    ({"base": "10.0.0.0/16", "size": 8}, "network at index 0 (10.0.0.0/16 8) has a smaller "
                                         "prefix (/16) than the target size of that pool (/8)"),
    ({"base": "10.0.0.0/16"}, "network at index 0 (10.0.0.0/16 None) is not in canonical form"),
    ({"base": "nope", "size": 24}, "network at index 0 (None 24) is not in canonical form"),
    ({"base": "10.0.0.0/16", "size": 33}, "network at index 0 (10.0.0.0/16 33) is not in "
                                          "canonical form"),
])
def test_pool_errors(entry: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        address_pools([entry])
    assert e.value.message == message
    assert address_pools([{"base": "10.1.2.3/16", "size": 24}]) == \
        (AddressPool(N("10.1.0.0/16"), 24),)


def test_mac_like_docker() -> None:
    assert mac_for_ip(A("172.17.0.2")) == "02:42:ac:11:00:02"
    assert normalize_mac("02-42-AC-11-00-02") == "02:42:ac:11:00:02"
    for bad in ("01:00:5e:00:00:01", "02:42:ac:11:00", "zz:42:ac:11:00:02"):
        with pytest.raises(InvalidParameter):
            normalize_mac(bad)
