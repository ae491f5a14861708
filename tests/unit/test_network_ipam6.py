"""IPv6 address management: the daemon's ULA pool, IPv6 pools and allocation, IPAM
config checks for IPv6 subnets, --ip6 parsing, AAAA and ip6.arpa PTR answers. Pure logic."""
from __future__ import annotations

import asyncio
import ipaddress

import pytest

from pydockerd.api.decode import convert
from pydockerd.errors import Conflict, Forbidden, InvalidParameter, Unavailable
from pydockerd.models import NetworkCreateRequest
from pydockerd.network import dns, usernets
from pydockerd.network.ipam import (AddressPool, Pool, choose_default_subnet6, parse_ip6, parse_network6,
                                    ula_base)
from pydockerd.network.resolver import EmbeddedDNS

V6 = ipaddress.IPv6Network
A6 = ipaddress.IPv6Address

ULA = (AddressPool(V6("fd42::/48"), 64),)

def test_ula_base_matches_moby_derivation() -> None:
    # moby's TestDeriveULABaseNetwork vectors
    assert ula_base("") == V6("fd42:98fc:1c14::/48")
    assert ula_base("499d4bc0-b0b3-416f-b1ee-cf6486315593") == V6("fd62:fb69:18af::/48")


def test_default_subnet6_is_first_free_64_of_the_base() -> None:
    base = (AddressPool(V6("fd42:98fc:1c14::/48"), 64),)
    assert choose_default_subnet6(base, []) == V6("fd42:98fc:1c14::/64")
    taken = [V6("fd42:98fc:1c14::/64"), V6("fd42:98fc:1c14:1::/80"),
             ipaddress.IPv4Network("10.0.0.0/8"), V6("::/0")]     # the default route: ignored
    assert choose_default_subnet6(base, taken) == V6("fd42:98fc:1c14:2::/64")
    with pytest.raises(Unavailable, match="IPv6 address pool"):
        choose_default_subnet6((AddressPool(V6("fd00::/63"), 64),), [V6("fd00::/63")])


def test_v6_pool_allocates_sequentially_after_gateway() -> None:
    net = V6("fd00:1::/64")
    pool = Pool(net, net[1])
    used: set = set()
    got = []
    for _ in range(3):
        ip = pool.allocate(used)
        used.add(ip)
        got.append(str(ip))
    assert got == ["fd00:1::2", "fd00:1::3", "fd00:1::4"]
    used.discard(A6("fd00:1::3"))
    assert pool.allocate(used) == A6("fd00:1::3")


def test_v6_pool_reserves_gateway_and_anycast_not_last() -> None:
    net = V6("fd00:2::/126")            # 4 addresses: ::0 anycast, ::1 gateway, ::2, ::3
    pool = Pool(net, net[1])
    assert pool.reserved(A6("fd00:2::")) and pool.reserved(A6("fd00:2::1"))
    assert not pool.reserved(A6("fd00:2::3"))            # no broadcast in IPv6
    used = {pool.allocate(set())}
    used.add(pool.allocate(used))
    assert used == {A6("fd00:2::2"), A6("fd00:2::3")}
    with pytest.raises(Unavailable, match="no available IPv6 addresses"):
        pool.allocate(used)


def test_v6_pool_preferred_range_and_aux() -> None:
    net = V6("fd00:3::/64")
    pool = Pool(net, net[1], V6("fd00:3::1:0/112"), frozenset({A6("fd00:3::1:0")}))
    assert pool.allocate(set()) == A6("fd00:3::1:1")         # range start is an aux address
    assert pool.allocate(set(), A6("fd00:3::99")) == A6("fd00:3::99")
    with pytest.raises(Conflict, match="Address already in use"):
        pool.allocate({A6("fd00:3::99")}, A6("fd00:3::99"))
    with pytest.raises(InvalidParameter):
        pool.allocate(set(), A6("fd00:4::1"))
    with pytest.raises(InvalidParameter, match="reserved"):
        pool.allocate(set(), A6("fd00:3::1"))


@pytest.mark.parametrize("text", ["garbage", "10.0.0.5", "::", "::ffff:10.0.0.1",
                                  "fe80::1%eth0"])
def test_parse_ip6_refuses_like_moby(text: str) -> None:
    with pytest.raises(InvalidParameter, match=f"invalid IPv6 address: {text}"):
        parse_ip6(text)
    assert parse_ip6("fd00::1:2") == A6("fd00::1:2")


def test_parse_network6() -> None:
    assert parse_network6("fd00:9::5/64") == V6("fd00:9::/64")
    for bad in ("10.0.0.0/8", "zz::/64", "fd00::/127"):
        with pytest.raises(InvalidParameter):
            parse_network6(bad)


def _req(body: dict) -> usernets.NetworkRequest:
    return usernets.parse_request(convert(body, NetworkCreateRequest))


def test_parse_request_dual_stack() -> None:
    req = _req({"Name": "n", "EnableIPv6": True, "IPAM": {"Config": [
        {"Subnet": "10.7.0.0/24"}, {"Subnet": "fd00:7::/64", "Gateway": "fd00:7::fe",
                                    "IPRange": "fd00:7::100/120"}]}})
    assert req.ipv6 and req.subnet == "10.7.0.0/24"
    assert (req.subnet6, req.gateway6, req.ip_range6) == ("fd00:7::/64", "fd00:7::fe",
                                                          "fd00:7::100/120")
    pool = usernets.plan_pool6(req, ULA, [], [])
    assert pool.gateway == A6("fd00:7::fe") and pool.ip_range == V6("fd00:7::100/120")
    # the driver option works as EnableIPv6 (moby), and an IPv6 subnet without IPv6 is dropped
    assert _req({"Name": "n", "Options": {"com.docker.network.enable_ipv6": "true"}}).ipv6
    off = _req({"Name": "n", "IPAM": {"Config": [{"Subnet": "fd00:8::1/64"}]}})
    assert not off.ipv6 and off.subnet6 == ""


@pytest.mark.parametrize("config,msg", [
    ({"Subnet": "fd00:1::1/64"}, "invalid subnet fd00:1::1/64: it should be fd00:1::/64"),
    ({"Subnet": "fd00:1::/64", "Gateway": "fd00:2::1"},
     "invalid gateway fd00:2::1: parent subnet fd00:1::/64 doesn't contain this address"),
    ({"Subnet": "fd00:1::/64", "Gateway": "10.0.0.1"},
     "invalid gateway 10.0.0.1: parent subnet is an IPv6 block"),
    ({"Subnet": "fd00:1::/64", "IPRange": "10.0.0.0/24"},
     "invalid ip-range 10.0.0.0/24: parent subnet is an IPv6 block"),
    ({"Subnet": "fd00:1::/64", "IPRange": "fd00:1::/56"},
     "invalid ip-range fd00:1::/56: CIDR block is bigger than its parent subnet fd00:1::/64"),
    ({"Subnet": "zz::/64"}, "invalid subnet zz::/64: invalid CIDR block notation"),
])
def test_ipam_v6_config_errors(config: dict, msg: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        _req({"Name": "n", "EnableIPv6": True, "IPAM": {"Config": [config]}})
    assert msg in e.value.message and e.value.message.startswith("invalid network config:\n")


def test_two_v6_subnets_and_overlaps_are_forbidden() -> None:
    with pytest.raises(Forbidden, match="multiple subnets"):
        _req({"Name": "n", "EnableIPv6": True, "IPAM": {"Config": [
            {"Subnet": "fd00:1::/64"}, {"Subnet": "fd00:2::/64"}]}})
    req = _req({"Name": "n", "EnableIPv6": True, "IPAM": {"Config": [
        {"Subnet": "fd00:1::/80"}]}})
    with pytest.raises(Forbidden, match="Pool overlaps"):
        usernets.plan_pool6(req, ULA, [], [V6("fd00:1::/64")])
    auto = _req({"Name": "n", "EnableIPv6": True})
    assert usernets.plan_pool6(auto, ULA, [V6("fd42::/64")], []).subnet == \
        V6("fd42:0:0:1::/64")


def test_dns_aaaa_and_ip6_ptr() -> None:
    table = {"db": ["10.9.0.2", "fd00:9::2"], "v4only": ["10.9.0.3"]}
    r = EmbeddedDNS(lambda cid, n: table.get(n),
                    lambda cid, ip: ["db.net"] if ip == "fd00:9::2" else None,
                    upstreams=lambda cid: [])

    async def ask(name: str, qtype: int) -> bytes:
        reply = await r.answer("c1", dns.build_query(7, name, qtype))
        assert reply is not None
        return reply
    assert dns.parse_answer_a(asyncio.run(ask("db", dns.TYPE_AAAA))) == (0, ["fd00:9::2"])
    assert dns.parse_answer_a(asyncio.run(ask("db", dns.TYPE_A))) == (0, ["10.9.0.2"])
    assert dns.parse_answer_a(asyncio.run(ask("v4only", dns.TYPE_AAAA))) == (0, [])   # NODATA
    name = dns.reverse_name("fd00:9::2")
    assert name.endswith(".ip6.arpa") and dns.ptr_address(name) == "fd00:9::2"
    assert b"\x02db\x03net\x00" in asyncio.run(ask(name, dns.TYPE_PTR))
    assert dns.ptr_address("1.2.ip6.arpa") is None
    assert dns.ptr_address("2.0.9.10.in-addr.arpa") == "10.9.0.2"


def test_v6_subnet_over_host_networks_is_refused() -> None:
    req = _req({"Name": "n", "EnableIPv6": True, "IPAM": {"Config": [
        {"Subnet": "fd00::/48"}]}})
    with pytest.raises(Forbidden, match="overlaps the host's networks"):
        usernets.plan_pool6(req, ULA, [V6("fd00::/64")], [])
    req = _req({"Name": "n", "EnableIPv6": True, "IPAM": {"Config": [{"Subnet": "::/0"}]}})
    with pytest.raises(Forbidden):
        usernets.plan_pool6(req, ULA, [], [])
