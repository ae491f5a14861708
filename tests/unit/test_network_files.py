"""The container's resolv.conf and hosts file, as Docker writes them."""
from __future__ import annotations

from pathlib import Path

import pytest

from pydockerd.errors import InvalidParameter
from pydockerd.network.files import build_resolv_conf, host_resolv_conf_path, hosts_file, \
    parse_resolv_conf, resolv_conf


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


HOST = "# comment\nnameserver 127.0.0.1\nnameserver 10.0.0.2\nnameserver ::1\n" \
       "nameserver fe80::1%eth0\nsearch example.com corp\noptions ndots:2 rotate\n"


def test_localhost_and_ipv6_nameservers_dropped() -> None:
    out = lines(build_resolv_conf(HOST, [], [], []))
    assert out == ["nameserver 10.0.0.2", "search example.com corp", "options ndots:2 rotate"]


def test_default_nameservers_when_only_localhost() -> None:
    out = lines(build_resolv_conf("nameserver 127.0.0.53\n", [], [], []))
    assert out == ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]


def test_overrides_replace_each_part() -> None:
    out = lines(build_resolv_conf(HOST, ["1.1.1.1"], ["a.test"], ["ndots:1"]))
    assert out == ["nameserver 1.1.1.1", "search a.test", "options ndots:1"]
    out = lines(build_resolv_conf(HOST, [], ["."], []))
    assert "search example.com corp" not in out and not any(x.startswith("search") for x in out)


def test_host_network_keeps_localhost() -> None:
    out = lines(build_resolv_conf(HOST, [], [], [], keep_localhost=True))
    assert "nameserver 127.0.0.1" in out


def test_parse_last_search_wins() -> None:
    ns, search, opts, other = parse_resolv_conf("domain a\nsearch b c\nsortlist 1.2.3.4\n")
    assert search == ["b", "c"] and other == ["sortlist 1.2.3.4"] and ns == [] and opts == []


def test_systemd_stub_redirect(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    upstream = tmp_path / "upstream.conf"
    host.write_text("nameserver 127.0.0.53\noptions edns0\n")
    upstream.write_text("nameserver 192.0.2.53\n")
    assert host_resolv_conf_path(str(host), str(upstream)) == str(upstream)
    assert lines(resolv_conf([], [], [], host_path=str(host), systemd_path=str(upstream))) == \
        ["nameserver 192.0.2.53"]
    host.write_text("nameserver 192.0.2.1\n")
    assert host_resolv_conf_path(str(host), str(upstream)) == str(host)


def test_hosts_file() -> None:
    text = hosts_file("abc123", "", "10.199.0.2", ["db:10.0.0.5", "gw:host-gateway",
                                                    "v6:[2001:db8::1]", "eq=10.0.0.6"],
                      host_gateway_ip="10.199.0.1")
    assert text.splitlines() == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        "10.0.0.5\tdb",
        "10.199.0.1\tgw",
        "2001:db8::1\tv6",
        "10.0.0.6\teq",
        "10.199.0.2\tabc123",
    ]


def test_hosts_file_fqdn_and_no_ip() -> None:
    assert hosts_file("web", "example.com", "10.0.0.9", []).splitlines()[-1] == \
        "10.0.0.9\tweb.example.com web"
    assert len(hosts_file("web", "", "", []).splitlines()) == 6


@pytest.mark.parametrize("bad", ["noip", "x:notanip", ":1.2.3.4"])
def test_bad_extra_host(bad: str) -> None:
    with pytest.raises(InvalidParameter):
        hosts_file("h", "", "10.0.0.2", [bad])


def test_host_gateway_without_bridge() -> None:
    with pytest.raises(InvalidParameter):
        hosts_file("h", "", "", ["gw:host-gateway"], host_gateway_ip=None)
