"""User-defined bridge networks and the embedded DNS, through the docker CLI and SDK.

Every network uses a 10.x.y.0/24 subnet that no host route uses; traffic goes only to
the containers and gateways made here; everything made is removed again.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import uuid

import pytest


def free_subnet(taken: set[str] = set()) -> tuple[str, str]:
    """(subnet, its gateway) in 10.x.y.0/24, clear of host routes and earlier picks."""
    used = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for _ in range(100):
        prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 250)}"
        if f"{prefix}." not in used and prefix not in taken:
            taken.add(prefix)
            return f"{prefix}.0/24", f"{prefix}.1"
    raise RuntimeError("no free subnet")


@pytest.fixture
def nets(daemon):
    """A factory for networks (and a record of containers) removed after the test."""
    made: list[tuple[str, str]] = []
    tag = uuid.uuid4().hex[:6]

    def create(*args: str, subnet: bool = True) -> tuple[str, str, str]:
        name = f"pdn-{tag}-{len(made)}"
        sub, gw = free_subnet()
        extra = ["--subnet", sub, "--gateway", gw] if subnet else []
        made.append((name, daemon.out("network", "create", *extra, *args, name).strip()))
        return name, sub, gw
    create.tag = tag  # type: ignore[attr-defined]
    yield create
    for cid in daemon.out("ps", "-aq", "--filter", f"label=pdn={tag}", check=False).split():
        daemon.cli("rm", "-f", cid, check=False)
    for name, net_id in made:
        r = daemon.cli("network", "rm", name, check=False)
        if r.returncode != 0 and "not found" not in r.stderr_text:
            _remove_bridge(net_id)


def run_bg(daemon, tag: str, *args: str) -> str:
    return daemon.out("run", "-d", "--label", f"pdn={tag}", *args, "busybox",
                      "sleep", "300").strip()


def sh(daemon, ctr: str, cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return daemon.cli("exec", ctr, "sh", "-c", cmd, check=check)


def test_create_inspect_ls_rm_prune(daemon, nets):
    name, sub, gw = nets("--label", "team=a", "--attachable", "-o",
                         "com.docker.network.driver.mtu=1400")
    doc = json.loads(daemon.out("network", "inspect", name))[0]
    assert doc["Name"] == name and doc["Driver"] == "bridge" and doc["Scope"] == "local"
    assert doc["IPAM"]["Config"] == [{"Subnet": sub, "Gateway": gw}]
    assert doc["Labels"] == {"team": "a"} and doc["Attachable"] and not doc["Internal"]
    assert doc["Options"] == {"com.docker.network.driver.mtu": "1400"}
    assert doc["Containers"] == {}
    dev = "br-" + doc["Id"][:12]
    assert f"inet {gw}/24" in subprocess.run(["ip", "-4", "addr", "show", dev],
                                             capture_output=True, text=True).stdout
    # Docker's errors
    r = daemon.cli("network", "create", name, check=False)
    assert r.returncode != 0 and f"network with name {name} already exists" in r.stderr_text
    r = daemon.cli("network", "create", "--subnet", sub, f"{name}-x", check=False)
    assert "Pool overlaps with other one on this address space" in r.stderr_text
    r = daemon.cli("network", "create", "-d", "nosuch", f"{name}-y", check=False)
    assert 'plugin "nosuch" not found' in r.stderr_text
    # ls filters
    listed = daemon.out("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}")
    assert listed.split() == [name]
    custom = daemon.out("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")
    assert name in custom.split() and "bridge" not in custom.split()
    # an auto-allocated, internal one; then prune removes both unused networks
    other, _, _ = nets("--internal", subnet=False)
    odoc = json.loads(daemon.out("network", "inspect", other))[0]
    assert odoc["Internal"] and odoc["IPAM"]["Config"][0]["Subnet"]
    ctr = run_bg(daemon, nets.tag, "--network", name)
    r = daemon.cli("network", "rm", name, check=False)
    assert "has active endpoints" in r.stderr_text
    out = daemon.out("network", "prune", "-f", "--filter", "label=team")
    assert name not in out and other not in out      # in use / no label
    daemon.out("rm", "-f", ctr)
    out = daemon.out("network", "prune", "-f", "--filter", "label=team=a")
    assert name in out
    daemon.out("network", "rm", other)
    assert subprocess.run(["ip", "link", "show", dev], capture_output=True).returncode != 0
    names = daemon.out("network", "ls", "--format", "{{.Name}}").split()
    assert name not in names and other not in names


def test_dns_names_aliases_isolation_static_ip(daemon, nets):
    tag = nets.tag
    name, sub, gw = nets()
    other, _, _ = nets()
    prefix = sub.rsplit(".", 1)[0]
    a = run_bg(daemon, tag, "--name", f"a-{tag}", "--network", name,
               "--network-alias", f"alias-{tag}")
    b = run_bg(daemon, tag, "--name", f"b-{tag}", "--network", name, "--ip", f"{prefix}.77")
    c = run_bg(daemon, tag, "--name", f"c-{tag}", "--network", other)
    ib = daemon.inspect(b)["NetworkSettings"]["Networks"][name]
    assert ib["IPAddress"] == f"{prefix}.77" and ib["Gateway"] == gw
    ia = daemon.inspect(a)["NetworkSettings"]["Networks"][name]
    assert ia["Aliases"] == [f"alias-{tag}"]
    assert ia["DNSNames"] == [f"a-{tag}", a[:12], f"alias-{tag}"]
    assert ia["NetworkID"] and ia["EndpointID"] and ia["MacAddress"]
    resolv = sh(daemon, b, "cat /etc/resolv.conf").stdout_text
    assert "nameserver 127.0.0.11" in resolv and "ndots:0" in resolv
    # by name, alias and short id; nslookup too
    sh(daemon, b, f"ping -c1 -W2 a-{tag}")
    sh(daemon, b, f"ping -c1 -W2 alias-{tag}")
    sh(daemon, a, f"ping -c1 -W2 {b[:12]}")
    out = sh(daemon, a, f"nslookup b-{tag}").stdout_text
    assert f"{prefix}.77" in out
    # the other network neither resolves nor reaches them
    assert sh(daemon, c, f"nslookup a-{tag}", check=False).returncode != 0
    assert sh(daemon, c, f"ping -c1 -W1 {prefix}.77", check=False).returncode != 0
    # network inspect lists both containers
    members = json.loads(daemon.out("network", "inspect", name))[0]["Containers"]
    assert {m["Name"] for m in members.values()} == {f"a-{tag}", f"b-{tag}"}
    # connect c to the first network: eth1, reachable by name; disconnect removes it
    daemon.out("network", "connect", "--alias", f"late-{tag}", name, c)
    assert "eth1" in sh(daemon, c, "ip -o link").stdout_text
    sh(daemon, c, f"ping -c1 -W2 b-{tag}")
    sh(daemon, a, f"ping -c1 -W2 late-{tag}")
    assert set(daemon.inspect(c)["NetworkSettings"]["Networks"]) == {name, other}
    daemon.out("network", "disconnect", name, c)
    assert "eth1" not in sh(daemon, c, "ip -o link").stdout_text
    assert set(daemon.inspect(c)["NetworkSettings"]["Networks"]) == {other}
    assert sh(daemon, a, f"nslookup late-{tag}", check=False).returncode != 0


def test_internal_network_has_no_route_out(daemon, nets):
    name, sub, gw = nets("--internal")
    ctr = run_bg(daemon, nets.tag, "--network", name)
    routes = sh(daemon, ctr, "ip route").stdout_text
    assert "default" not in routes and sub.split("/")[0] in routes
    sh(daemon, ctr, f"ping -c1 -W2 {gw}")          # the bridge itself is on-link


def test_sdk_network_connect(daemon, nets, sdk):
    name, sub, _ = nets()
    net = sdk.networks.get(name)
    ctr = sdk.containers.run("busybox", ["sleep", "300"], detach=True,
                             labels={"pdn": nets.tag})
    net.connect(ctr, aliases=["sdkalias"])
    net.reload()
    assert ctr.id in net.attrs["Containers"]
    ctr.reload()
    assert set(ctr.attrs["NetworkSettings"]["Networks"]) == {"bridge", name}
    net.disconnect(ctr)
    ctr.remove(force=True)


def _remove_bridge(net_id: str) -> None:
    """Last resort when the daemon could not remove a network: its device and chains."""
    dev = f"br-{net_id[:12]}"
    for table, hook in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
        subprocess.run(["iptables", "-t", table, "-D", hook, "-j", f"PYDOCKER-{dev}"],
                       capture_output=True)
        subprocess.run(["iptables", "-t", table, "-F", f"PYDOCKER-{dev}"], capture_output=True)
        subprocess.run(["iptables", "-t", table, "-X", f"PYDOCKER-{dev}"], capture_output=True)
    subprocess.run(["ip", "link", "del", dev], capture_output=True)


def test_network_survives_daemon_restart(fresh_daemon):
    d = fresh_daemon("--live-restore")
    sub, gw = free_subnet()
    net_id = d.out("network", "create", "--subnet", sub, "pdn-live").strip()
    try:
        a = d.out("run", "-d", "--name", "la", "--network", "pdn-live", "busybox",
                  "sleep", "300").strip()
        b = d.out("run", "-d", "--name", "lb", "--network", "pdn-live", "busybox",
                  "sleep", "300").strip()
        d.restart()
        # live-restored containers still resolve each other (DNS served again)
        d.cli("exec", a, "ping", "-c1", "-W2", "lb")
        d.out("restart", "-t", "0", a, b)
        d.cli("exec", b, "ping", "-c1", "-W2", "la")
        doc = json.loads(d.out("network", "inspect", "pdn-live"))[0]
        assert doc["IPAM"]["Config"][0]["Subnet"] == sub and len(doc["Containers"]) == 2
        d.out("rm", "-f", a, b)
        d.out("network", "rm", "pdn-live")
    finally:
        if d.proc is not None:
            d.cli("rm", "-f", "la", "lb", check=False)
            d.cli("network", "rm", "pdn-live", check=False)
        _remove_bridge(net_id)


def _ns_addrs(key: str) -> str:
    return subprocess.run(["nsenter", f"--net={key}", "ip", "-o", "-4", "addr"],
                          capture_output=True, text=True, check=True).stdout


def test_sandbox_key_enters_the_netns_without_a_host_mount(fresh_daemon):
    """SandboxKey works as dockerd's (`nsenter --net=<key>`), also after a live-restore
    restart and a network connect, yet pins the namespace without a mount in the host's
    mount namespace: each mount there slows every runc command (issue 10)."""
    d = fresh_daemon("--live-restore")
    sub, _ = free_subnet()
    net_id = d.out("network", "create", "--subnet", sub, "pdn-key").strip()
    try:
        cid = d.out("run", "-d", "--name", "ka", "busybox", "sleep", "300").strip()
        none = d.out("run", "-d", "--name", "kb", "--network", "none", "busybox",
                     "sleep", "300").strip()
        key, ip = d.out("inspect", "-f", "{{.NetworkSettings.SandboxKey}} "
                        "{{.NetworkSettings.IPAddress}}", cid).split()
        none_key = d.out("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", none).strip()
        assert key.endswith("/netns/" + cid) and none_key.endswith("/netns/" + none)
        assert f"inet {ip}/" in _ns_addrs(key)
        assert "inet 127.0.0.1/8" in _ns_addrs(none_key) and "eth0" not in _ns_addrs(none_key)
        with open("/proc/self/mountinfo") as f:
            mounts = f.read()
        assert key not in mounts and none_key not in mounts
        d.restart()
        assert f"inet {ip}/" in _ns_addrs(key)
        d.out("network", "connect", "pdn-key", cid)
        ip2 = d.out("inspect", "-f", '{{(index .NetworkSettings.Networks "pdn-key").IPAddress}}',
                    cid).strip()
        assert f"inet {ip2}/" in _ns_addrs(key)
        d.out("stop", "-t", "0", cid)
        assert d.out("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", cid).strip() == ""
        assert not os.path.lexists(key)
        d.out("rm", "-f", cid, none)
        d.out("network", "rm", "pdn-key")
    finally:
        if d.proc is not None:
            d.cli("rm", "-f", "ka", "kb", check=False)
            d.cli("network", "rm", "pdn-key", check=False)
        _remove_bridge(net_id)


def test_published_port_on_user_network(daemon, nets):
    import socket
    import time
    import urllib.request
    name, sub, gw = nets()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    httpd = "mkdir -p /www && echo hi-net > /www/index.html && exec httpd -f -p 80 -h /www"
    daemon.out("run", "-d", "--label", f"pdn={nets.tag}", "--name", f"web-{nets.tag}",
               "--network", name, "-p", f"{port}:80", "busybox", "sh", "-c", httpd)
    net_id = json.loads(daemon.out("network", "inspect", name))[0]["Id"]
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert any(f"br-{net_id[:12]}" in r and f"--dport {port} " in r
               for r in rules.splitlines())
    for host in ("127.0.0.1", gw):       # userland proxy; DNAT towards the user bridge
        end = time.time() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/", timeout=3) as r:
                    assert r.read().decode().strip() == "hi-net"
                break
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.2)
    out = daemon.out("run", "--rm", "--network", name, "busybox", "wget", "-q", "-O-",
                     f"http://web-{nets.tag}/")
    assert out.strip() == "hi-net"
    daemon.cli("rm", "-f", f"web-{nets.tag}")
    daemon.cli("network", "rm", name)
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert f"PYPORTS-br-{net_id[:12]}" not in rules      # its port chains went with it
