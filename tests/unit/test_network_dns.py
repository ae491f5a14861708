"""The embedded DNS codec and resolver logic, user network requests (names, IPAM
checks, auxiliary addresses). Pure logic."""
from __future__ import annotations

import asyncio
import ipaddress

import pytest

from pydockerd.api.decode import convert
from pydockerd.errors import Conflict, Forbidden, InvalidParameter, NotFound, Unavailable
from pydockerd.models import NetworkCreateRequest
from pydockerd.network import dns, files, usernets
from pydockerd.network.resolver import EmbeddedDNS


def test_query_roundtrip_a_nxdomain_aaaa() -> None:
    q = dns.parse_query(dns.build_query(0x1234, "Web.Example."))
    assert q.id == 0x1234 and q.question.name == "web.example" and q.recursion_desired
    rcode, addrs = dns.parse_answer_a(dns.answer_a(q, ["10.1.2.3", "10.1.2.4"]))
    assert rcode == 0 and addrs == ["10.1.2.3", "10.1.2.4"]
    assert dns.parse_answer_a(dns.answer_empty(q, dns.RCODE_NXDOMAIN)) == (3, [])
    with pytest.raises(dns.DNSFormatError):
        dns.parse_query(b"\x00\x01")
    assert dns.error_reply(b"\x12\x34\x01\x00" + b"\0" * 8, dns.RCODE_FORMERR)[:2] == b"\x12\x34"


def test_resolver_answers_known_names_and_servfails_without_upstreams() -> None:
    table = {"db": ["10.9.0.2"]}
    r = EmbeddedDNS(lambda cid, n: table.get(n), lambda cid, ip: ["db.net"] if ip ==
                    "10.9.0.2" else None, upstreams=lambda cid: [])

    async def ask(name: str, qtype: int = dns.TYPE_A) -> bytes:
        reply = await r.answer("c1", dns.build_query(7, name, qtype))
        assert reply is not None
        return reply
    assert dns.parse_answer_a(asyncio.run(ask("db"))) == (0, ["10.9.0.2"])
    assert dns.parse_answer_a(asyncio.run(ask("db", dns.TYPE_AAAA))) == (0, [])
    assert dns.parse_answer_a(asyncio.run(ask("elsewhere.test")))[0] == dns.RCODE_SERVFAIL
    ptr = asyncio.run(ask(dns.reverse_name("10.9.0.2"), dns.TYPE_PTR))
    assert b"\x02db\x03net\x00" in ptr


def test_embedded_resolv_conf() -> None:
    text = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
    out = files.build_embedded_resolv_conf(text, [], [])
    assert "nameserver 127.0.0.11" in out and "nameserver 10.0.0.2" not in out
    assert out.endswith("# ExtServers: [10.0.0.2]\n")     # the host's, loopback left out
    out = files.build_embedded_resolv_conf(text, [], [], dns=["10.1.1.1", "10.1.1.2"])
    assert out.endswith("# ExtServers: [10.1.1.1 10.1.1.2]\n")
    assert "search corp.example" in out and "options ndots:0 edns0" in out
    assert "options ndots:2" in files.build_embedded_resolv_conf(text, ["."], ["ndots:2"])


def _req(body: dict) -> usernets.NetworkRequest:
    return usernets.parse_request(convert(body, NetworkCreateRequest))


def test_network_requests_and_pools() -> None:
    # another driver or IPAM driver is a plugin's, looked up at create (not here)
    plug = _req({"Name": "n", "Driver": "overlay", "IPAM": {"Driver": "ipx",
                                                            "Options": {"a": "b"}}})
    assert (plug.driver, plug.ipam_driver, plug.ipam_options) == ("overlay", "ipx",
                                                                  {"a": "b"})
    with pytest.raises(NotFound, match='plugin " " not found'):
        _req({"Name": "n", "Driver": " "})
    assert _req({"Name": "n", "Driver": "me/netplug:1.0"}).driver == "me/netplug:1.0"
    with pytest.raises(Forbidden):
        _req({"Name": "host", "Driver": "host"})
    with pytest.raises(Forbidden, match="operation is not permitted on predefined bridge"):
        _req({"Name": "bridge"})
    req = _req({"Name": "n", "IPAM": {"Config": [
        {"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.254", "IPRange": "10.50.0.128/25"}]}})
    pool = usernets.plan_pool(req, [], [])
    assert str(pool.gateway) == "10.50.0.254" and str(pool.ip_range) == "10.50.0.128/25"
    with pytest.raises(Forbidden, match="Pool overlaps"):
        usernets.plan_pool(req, [], [ipaddress.IPv4Network("10.50.0.0/16")])
    auto = usernets.plan_pool(_req({"Name": "m"}),
                              [ipaddress.IPv4Network("172.17.0.0/16")],
                              [ipaddress.IPv4Network("172.18.0.0/16")])
    assert str(auto.subnet) == "172.19.0.0/16"


@pytest.mark.parametrize("name", ["test 01", "a/b", "-x", ".x", "é", "a:b", "x" * 300])
def test_network_names_as_libnetwork(name: str) -> None:
    assert _req({"Name": name}).name == name


@pytest.mark.parametrize("name", ["", " ", "\t"])
def test_blank_network_name_refused(name: str) -> None:
    with pytest.raises(InvalidParameter, match="^invalid name: name is empty$"):
        _req({"Name": name})


IPAM_ERRORS = [   # moby's ValidateIPAM, word for word
    ({"Subnet": "10.50.0.0/24", "Gateway": "10.51.0.1"},
     "invalid gateway 10.51.0.1: parent subnet 10.50.0.0/24 doesn't contain this address"),
    ({"Subnet": "10.50.0.5/24"}, "invalid subnet 10.50.0.5/24: it should be 10.50.0.0/24"),
    ({"Subnet": "nope"}, "invalid subnet nope: invalid CIDR block notation"),
    ({"Gateway": "10.0.0.1"}, "invalid subnet : invalid CIDR block notation"),
    ({"Subnet": "10.50.0.0/24", "IPRange": "10.50.1.0/25"},
     "invalid ip-range 10.50.1.0/25: parent subnet 10.50.0.0/24 doesn't contain ip-range"),
    ({"Subnet": "10.50.0.0/24", "AuxiliaryAddresses": {"a": "10.60.0.5"}},
     "invalid auxiliary address a: parent subnet 10.50.0.0/24 doesn't contain this address"),
    ({"Subnet": "10.50.0.0/24", "AuxiliaryAddresses": {"a": "xyz"}},
     "invalid auxiliary address a: invalid address"),
    ({"Subnet": "10.50.0.0/24", "Gateway": "x", "AuxiliaryAddresses": {"b": "::1"}},
     "* invalid gateway x: invalid address\n* invalid auxiliary address b: parent subnet "
     "is an IPv4 block"),
]


@pytest.mark.parametrize("config,message", IPAM_ERRORS)
def test_ipam_config_validated_as_moby(config: dict, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        _req({"Name": "n", "IPAM": {"Config": [config]}})
    assert e.value.message == "invalid network config:\n" + message


def test_auxiliary_addresses_reserved() -> None:
    req = _req({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.50.0.0/29", "AuxiliaryAddresses":
                                                  {"a": "10.50.0.2", "b": "10.50.0.4"}}]}})
    assert req.aux_addresses == {"a": "10.50.0.2", "b": "10.50.0.4"}
    pool = usernets.plan_pool(req, [], [])
    used: set[ipaddress.IPv4Address] = set()
    for _ in range(3):
        used.add(pool.allocate(used))
    assert {str(a) for a in used} == {"10.50.0.3", "10.50.0.5", "10.50.0.6"}
    with pytest.raises(Unavailable):
        pool.allocate(used)
    with pytest.raises(Conflict, match="Address already in use"):
        pool.allocate(set(), ipaddress.IPv4Address("10.50.0.4"))
    for aux in ({"a": "10.50.0.1"}, {"a": "10.50.0.0"}, {"a": "10.50.0.3", "b": "10.50.0.3"}):
        dup = _req({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.50.0.0/29",
                                                      "AuxiliaryAddresses": aux}]}})
        with pytest.raises(InvalidParameter, match=r"failed to allocate secondary ip address "
                                                   r"\(.:10.50.0.\d\): Address already in use"):
            usernets.plan_pool(dup, [], [])
