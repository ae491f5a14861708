"""IPv6: dual-stack user networks, --ip6, AAAA from the embedded DNS, ip6tables chains
and isolation, ports published on [::] and 0.0.0.0, --ipv6/--fixed-cidr-v6 for the
default bridge; through the docker CLI and the SDK.

Subnets are random ULA /64s (fdXX:XXXX:XXXX::/64) and 10.x.y.0/24s clear of host routes;
traffic goes only to the test's own containers, their gateways and loopback ([::1]).
"""
from __future__ import annotations

import json
import random
import socket
import subprocess
import uuid

import pytest

from polling import wait_until
from test_networks import free_subnet
from test_ports import HTTPD, fetch, free_port


def free_subnet6() -> tuple[str, str]:
    """(subnet, its first address) in a random ULA /48, clear of the host's routes."""
    used = subprocess.run(["ip", "-6", "route", "show", "table", "all"], capture_output=True,
                          text=True).stdout
    for _ in range(100):
        prefix = f"fd{random.randint(1, 255):02x}:{random.randint(1, 0xffff):x}:" \
                 f"{random.randint(1, 0xffff):x}"
        if prefix not in used:
            return f"{prefix}::/64", f"{prefix}::1"
    raise RuntimeError("no free IPv6 subnet")


def ip6tables_save() -> str:
    return subprocess.run(["ip6tables-save"], capture_output=True, text=True).stdout


def bridge_of(daemon, net: str) -> str:
    return f"br-{daemon.out('network', 'inspect', '-f', '{{.Id}}', net).strip()[:12]}"


@pytest.fixture
def v6(daemon):
    """Factory for dual-stack networks; networks and containers go afterwards."""
    tag = uuid.uuid4().hex[:6]
    made: list[str] = []

    def create(*args: str, daemon_=None) -> tuple[str, str, str]:
        d = daemon_ or daemon
        name = f"pd6-{tag}-{len(made)}"
        sub4, _ = free_subnet()
        sub6, gw6 = free_subnet6()
        d.out("network", "create", "--ipv6", "--subnet", sub4, "--subnet", sub6, *args, name)
        made.append(name)
        return name, sub6, gw6
    create.tag = tag  # type: ignore[attr-defined]
    create.made = made  # type: ignore[attr-defined]
    yield create
    for cid in daemon.out("ps", "-aq", "--filter", f"label=pd6={tag}", check=False).split():
        daemon.cli("rm", "-f", cid, check=False)
    for name in made:
        daemon.cli("network", "rm", name, check=False)


def run_bg(daemon, tag: str, *args: str, cmd: tuple[str, ...] = ("sleep", "300")) -> str:
    return daemon.out("run", "-d", "--label", f"pd6={tag}", *args, "busybox", *cmd).strip()


def test_dual_stack_network_create_inspect_rm(daemon, v6):
    name, sub6, gw6 = v6()
    doc = json.loads(daemon.out("network", "inspect", name))[0]
    assert doc["EnableIPv6"] is True
    configs = doc["IPAM"]["Config"]
    assert len(configs) == 2 and ":" not in configs[0]["Subnet"]
    assert configs[1] == {"Subnet": sub6, "Gateway": gw6}
    br = bridge_of(daemon, name)
    addrs = subprocess.run(["ip", "-6", "addr", "show", "dev", br], capture_output=True,
                           text=True).stdout
    assert f"{gw6}/64" in addrs
    saved = ip6tables_save()
    assert f":PYDOCKER-{br} " in saved and f"-A FORWARD -j PYDOCKER-{br}" in saved
    assert f"-A PYDOCKER-{br} -s {sub6} ! -o {br} -j MASQUERADE" in saved
    # --ipv6 without an IPv6 subnet: a /64 of the daemon's ULA prefix (moby 27+)
    auto, _, _ = v6()          # (the factory always gives a subnet; make one without)
    daemon.out("network", "rm", auto)
    v6.made.remove(auto)
    plain = f"pd6-{v6.tag}-auto"
    daemon.out("network", "create", "--ipv6", plain)
    v6.made.append(plain)
    cfg6 = json.loads(daemon.out("network", "inspect", plain))[0]["IPAM"]["Config"][1]
    assert cfg6["Subnet"].startswith("fd") and cfg6["Subnet"].endswith("::/64")
    # network rm removes every ip6tables rule and chain made for the bridge
    for n in (name, plain):
        dev = bridge_of(daemon, n)
        daemon.out("network", "rm", n)
        v6.made.remove(n)
        assert f"PYDOCKER-{dev}" not in ip6tables_save()
        assert subprocess.run(["ip", "link", "show", dev], capture_output=True).returncode != 0


def test_containers_get_both_addresses_ping_and_aaaa(daemon, v6):
    name, sub6, gw6 = v6()
    prefix = sub6.split("::")[0]
    a = run_bg(daemon, v6.tag, "--network", name, "--name", f"a-{v6.tag}")
    b = run_bg(daemon, v6.tag, "--network", name, "--name", f"b-{v6.tag}",
               "--ip6", f"{prefix}::99")
    ep_a = daemon.inspect(a)["NetworkSettings"]["Networks"][name]
    ep_b = daemon.inspect(b)["NetworkSettings"]["Networks"][name]
    assert ep_a["GlobalIPv6Address"] == f"{prefix}::2"
    assert ep_a["GlobalIPv6PrefixLen"] == 64 and ep_a["IPv6Gateway"] == gw6
    assert ep_a["IPAddress"] and ep_a["Gateway"]
    assert ep_b["GlobalIPv6Address"] == f"{prefix}::99"
    assert ep_b["IPAMConfig"] == {"IPv6Address": f"{prefix}::99"}
    members = json.loads(daemon.out("network", "inspect", name))[0]["Containers"]
    assert members[b]["IPv6Address"] == f"{prefix}::99/64"
    # inside: the address, the default route, and IPv6 traffic between the two
    assert f"{prefix}::2/64" in daemon.out("exec", a, "ip", "-6", "addr", "show", "eth0")
    assert f"default via {gw6}" in daemon.out("exec", a, "ip", "-6", "route")
    out = daemon.out("exec", a, "ping6", "-c", "1", "-W", "5", f"b-{v6.tag}")
    assert f"{prefix}::99" in out and "1 packets received" in out
    # the embedded DNS answers AAAA with the IPv6 address, A with the IPv4 one
    aaaa = daemon.out("exec", a, "nslookup", "-type=AAAA", f"b-{v6.tag}")
    assert f"{prefix}::99" in aaaa
    a_rec = daemon.out("exec", a, "nslookup", "-type=A", f"b-{v6.tag}")
    assert ep_b["IPAddress"] in a_rec and f"{prefix}::99" not in a_rec
    # --ip6 on network connect
    c = run_bg(daemon, v6.tag)
    daemon.out("network", "connect", "--ip6", f"{prefix}::77", name, c)
    assert daemon.inspect(c)["NetworkSettings"]["Networks"][name]["GlobalIPv6Address"] == \
        f"{prefix}::77"
    assert "1 packets received" in daemon.out("exec", c, "ping6", "-c", "1", "-W", "5",
                                              f"{prefix}::2")


def test_bad_ipv6_subnets_and_addresses_are_400s(daemon, v6, sdk):
    import docker
    from docker.types import IPAMConfig, IPAMPool
    name, sub6, _ = v6()
    prefix = sub6.split("::")[0]
    cases = [   # (pools, status, dockerd's message); sent with the SDK (the CLI checks some)
        ([IPAMPool(subnet=f"{prefix}::1/64")], 400,
         f"invalid subnet {prefix}::1/64: it should be {sub6}"),
        ([IPAMPool(subnet="fd00:77::/64", gateway="fd00:78::1")], 400,
         "invalid gateway fd00:78::1: parent subnet fd00:77::/64 doesn't contain this address"),
        ([IPAMPool(subnet="fd00:77::/64", iprange="fd00:77::/56")], 400,
         "invalid ip-range fd00:77::/56: CIDR block is bigger than its parent subnet"),
        ([IPAMPool(subnet="fd00:77::/64", gateway="10.0.0.1")], 400,
         "invalid gateway 10.0.0.1: parent subnet is an IPv6 block"),
        ([IPAMPool(subnet="fd00:77::/64"), IPAMPool(subnet="fd00:78::/64")], 403,
         "bridge driver doesn't support multiple subnets"),
        ([IPAMPool(subnet=f"{prefix}::/80")], 403,
         "Pool overlaps with other one on this address space"),
    ]
    for pools, status, msg in cases:
        with pytest.raises(docker.errors.APIError) as e:
            sdk.networks.create(f"bad-{v6.tag}", enable_ipv6=True,
                                ipam=IPAMConfig(pool_configs=pools))
        assert e.value.status_code == status and msg in e.value.explanation, \
            (pools, e.value.explanation)
    assert f"bad-{v6.tag}" not in daemon.out("network", "ls", "--format", "{{.Name}}")
    assert daemon.cli("network", "create", "--ipv6", "--subnet", f"{prefix}::1/64",
                      f"bad-{v6.tag}", check=False).returncode != 0
    # --ip6: not an IPv6 address, outside the subnet, on the default bridge
    for ip6, msg in (("garbage", "invalid IPv6 address: garbage"),
                     ("10.0.0.5", "invalid IPv6 address: 10.0.0.5"),
                     ("fd00:99::1", "no configured subnet contains IP address fd00:99::1")):
        r = daemon.cli("run", "--rm", "--network", name, "--ip6", ip6, "busybox", "true",
                       check=False)
        assert r.returncode != 0 and msg in r.stderr_text, r.stderr_text
    r = daemon.cli("run", "--rm", "--ip6", "fd00:99::1", "busybox", "true", check=False)
    assert "user specified IP address is supported on user defined networks only" in \
        r.stderr_text


def test_sdk_dual_stack_network_and_container(daemon, v6, sdk):
    import docker
    sub6, gw6 = free_subnet6()
    name = f"pd6-{v6.tag}-sdk"
    net = sdk.networks.create(name, driver="bridge", enable_ipv6=True,
                              ipam=docker.types.IPAMConfig(pool_configs=[
                                  docker.types.IPAMPool(subnet=sub6, gateway=gw6)]))
    v6.made.append(name)
    assert net.attrs["EnableIPv6"] is True
    c = sdk.containers.run("busybox", ["sleep", "300"], detach=True, network=name,
                           labels={"pd6": v6.tag})
    c.reload()
    ep = c.attrs["NetworkSettings"]["Networks"][name]
    assert ep["GlobalIPv6Address"] == gw6[:-1] + "2" and ep["IPv6Gateway"] == gw6


def test_published_port_on_both_families(daemon, v6):
    port = free_port()
    cid = run_bg(daemon, v6.tag, "-p", f"{port}:80", cmd=("sh", "-c", HTTPD))
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-ports"
    assert fetch(f"http://[::1]:{port}/").strip() == "hello-ports"
    assert daemon.out("port", cid).split("\n")[:2] == [f"80/tcp -> 0.0.0.0:{port}",
                                                       f"80/tcp -> [::]:{port}"]
    ps = daemon.out("ps", "--filter", f"id={cid}", "--format", "{{.Ports}}").strip()
    assert ps == f"0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp"
    assert daemon.inspect(cid)["NetworkSettings"]["Ports"]["80/tcp"] == [
        {"HostIp": "0.0.0.0", "HostPort": str(port)}, {"HostIp": "::", "HostPort": str(port)}]
    # an explicit [::1] binding only
    p2 = free_port()
    c2 = run_bg(daemon, v6.tag, "-p", f"[::1]:{p2}:80", cmd=("sh", "-c", HTTPD))
    assert daemon.out("port", c2).strip() == f"80/tcp -> [::1]:{p2}"
    assert fetch(f"http://[::1]:{p2}/").strip() == "hello-ports"
    daemon.out("rm", "-f", cid, c2)
    with socket.socket(socket.AF_INET6) as s:      # no listener on [::]:port any more
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT is fine
        s.bind(("::", port))
        s.listen(1)


def test_published_port_of_ipv6_container_uses_ip6tables(daemon, v6):
    name, sub6, _ = v6()
    port = free_port()
    cid = run_bg(daemon, v6.tag, "--network", name, "-p", f"{port}:80",
                 cmd=("sh", "-c", HTTPD))
    ip6 = daemon.inspect(cid)["NetworkSettings"]["Networks"][name]["GlobalIPv6Address"]
    assert fetch(f"http://[::1]:{port}/").strip() == "hello-ports"
    rules = [ln for ln in ip6tables_save().splitlines() if f"--dport {port} " in ln]
    assert any(f"--to-destination [{ip6}]:80" in ln for ln in rules), rules
    daemon.out("rm", "-f", cid)
    assert not [ln for ln in ip6tables_save().splitlines() if f"--dport {port} " in ln]


FORWARDING6 = "/proc/sys/net/ipv6/conf/all/forwarding"


@pytest.fixture
def ipv6_forwarding_restored():
    """The daemon turns IPv6 forwarding on (as dockerd); put the host's value back."""
    with open(FORWARDING6) as f:
        before = f.read().strip()
    yield
    with open(FORWARDING6, "w") as f:
        f.write(before)


def test_ipv6_isolation_between_networks(fresh_daemon, ipv6_forwarding_restored):
    """A container on another network cannot reach the IPv6 address (the forwarding
    this needs is on: --ip-forward, so the DROP rules are what stops it)."""
    d = fresh_daemon("--ip-forward=true")
    names = []
    for i in range(2):
        sub4, _ = free_subnet()
        sub6, _ = free_subnet6()
        names.append(f"iso6-{i}")
        d.out("network", "create", "--ipv6", "--subnet", sub4, "--subnet", sub6, names[-1])
    with open("/proc/sys/net/ipv6/conf/all/forwarding") as f:
        assert f.read().strip() == "1"       # set for an IPv6 network: else this cannot fail
    target = d.out("run", "-d", "--network", names[0], "busybox", "sleep", "300").strip()
    ip6 = d.inspect(target)["NetworkSettings"]["Networks"][names[0]]["GlobalIPv6Address"]
    # (busybox-static's wget crashes on IPv6 literals: ping6 it is)
    same = d.out("run", "--rm", "--network", names[0], "busybox", "ping6", "-c", "1", "-W",
                 "5", ip6)
    assert "1 packets received" in same
    r = d.cli("run", "--rm", "--network", names[1], "busybox", "ping6", "-c", "2", "-W",
              "2", ip6, check=False)
    assert r.returncode != 0 and " 0 packets received" in r.stdout_text, r.stdout_text
    br = [bridge_of(d, n) for n in names]
    assert f"-A PYDOCKER-{br[1]} -i {br[1]} -o {br[0]} -j DROP" in ip6tables_save()
    d.out("rm", "-f", target)
    for n in names:
        d.out("network", "rm", n)
    saved = ip6tables_save()
    assert not any(f"PYDOCKER-{b}" in saved for b in br)


def test_default_bridge_with_fixed_cidr_v6(fresh_daemon):
    sub6, gw6 = free_subnet6()
    d = fresh_daemon("--ipv6", "--fixed-cidr-v6", sub6)
    net = json.loads(d.out("network", "inspect", "bridge"))[0]
    assert net["EnableIPv6"] is True
    assert {"Subnet": sub6, "IPRange": sub6, "Gateway": gw6} in net["IPAM"]["Config"]
    cid = d.out("run", "-d", "busybox", "sleep", "300").strip()
    ns = d.inspect(cid)["NetworkSettings"]
    assert ns["GlobalIPv6Address"] == gw6[:-1] + "2" and ns["IPv6Gateway"] == gw6
    assert ns["Networks"]["bridge"]["GlobalIPv6PrefixLen"] == 64
    wait_until(lambda: "1 packets received" in d.out(
        "exec", cid, "ping6", "-c", "1", "-W", "2", gw6, check=False), 15, 0.5,
        "the gateway to answer ping6")
    d.out("rm", "-f", cid)
