"""The embedded DNS codec and resolver logic, user network requests. Pure logic."""
from __future__ import annotations

import asyncio
import ipaddress

import pytest

from pydockerd.errors import Forbidden, InvalidParameter, NotFound
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
                    "10.9.0.2" else None, upstreams=lambda: [])

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
    assert "nameserver 127.0.0.11" in out and "10.0.0.2" not in out
    assert "search corp.example" in out and "options ndots:0 edns0" in out
    assert "options ndots:2" in files.build_embedded_resolv_conf(text, ["."], ["ndots:2"])


def test_network_requests_and_pools() -> None:
    with pytest.raises(NotFound, match='plugin "overlay" not found'):
        usernets.parse_request({"Name": "n", "Driver": "overlay"})
    with pytest.raises(Forbidden):
        usernets.parse_request({"Name": "host", "Driver": "host"})
    req = usernets.parse_request({"Name": "n", "IPAM": {"Config": [
        {"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.254", "IPRange": "10.50.0.128/25"}]}})
    pool = usernets.plan_pool(req, [], [])
    assert str(pool.gateway) == "10.50.0.254" and str(pool.ip_range) == "10.50.0.128/25"
    with pytest.raises(Forbidden, match="Pool overlaps"):
        usernets.plan_pool(req, [], [ipaddress.IPv4Network("10.50.0.0/16")])
    auto = usernets.plan_pool(usernets.parse_request({"Name": "m"}),
                              [ipaddress.IPv4Network("172.17.0.0/16")],
                              [ipaddress.IPv4Network("172.18.0.0/16")])
    assert str(auto.subnet) == "172.19.0.0/16"
    bad = usernets.parse_request({"Name": "n", "IPAM": {"Config": [
        {"Subnet": "10.50.0.0/24", "Gateway": "10.51.0.1"}]}})
    with pytest.raises(InvalidParameter):
        usernets.plan_pool(bad, [], [])
