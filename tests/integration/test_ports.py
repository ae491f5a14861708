"""Port publishing: -p, -P, docker port, ps PORTS, UDP, conflicts, cleanup, SDK.

Traffic goes only to 127.0.0.1 and to the test daemon's own bridge addresses.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

HTTPD = "mkdir -p /www && echo hello-ports > /www/index.html && exec busybox httpd -f -p 80 -h /www"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, deadline: float = 10.0) -> str:
    end = time.time() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                return r.read().decode()
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.2)


def proxies_of(cid: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "pydockerd.network.proxy"], capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if cid in line]


def rules_for(port: int) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if f"--dport {port} " in line
            and "PYPORTS-" in line]


def test_publish_tcp_loopback_gateway_and_cleanup(daemon):
    port = free_port()
    cid = daemon.out("run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c", HTTPD).strip()
    try:
        assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-ports"
        gateway = daemon.bip.split("/")[0]
        # from the host to the bridge address: the iptables DNAT path
        assert fetch(f"http://{gateway}:{port}/").strip() == "hello-ports"
        # from another container through the host's bridge gateway address
        out = daemon.out("run", "--rm", "busybox", "wget", "-q", "-O-",
                         f"http://{gateway}:{port}/")
        assert out.strip() == "hello-ports"
        doc = daemon.inspect(cid)
        # the default binding is 0.0.0.0 and [::] (dockerd), the same host port
        assert doc["NetworkSettings"]["Ports"] == {
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)},
                       {"HostIp": "::", "HostPort": str(port)}]}
        assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "",
                                                                "HostPort": str(port)}]}
        assert daemon.out("port", cid).strip() == \
            f"80/tcp -> 0.0.0.0:{port}\n80/tcp -> [::]:{port}"
        ps = daemon.out("ps", "--filter", f"id={cid}", "--format", "{{.Ports}}").strip()
        assert ps == f"0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp"
        assert len(proxies_of(cid)) == 2
        assert len(rules_for(port)) == 1 and len(rules_for(80)) >= 1
        # the port is taken: by this container ...
        r = daemon.cli("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
        assert r.returncode != 0
        assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in r.stderr_text
    finally:
        daemon.cli("stop", "-t", "1", cid)
    assert proxies_of(cid) == []
    assert rules_for(port) == []
    assert daemon.inspect(cid)["NetworkSettings"]["Ports"] == {}
    daemon.cli("rm", cid)


def test_port_held_by_another_process_fails_cleanly(daemon):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        r = daemon.cli("run", "-d", "--name", f"busy{port}", "-p", f"{port}:80", "busybox",
                       "sleep", "30", check=False)
        assert r.returncode != 0
        assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in r.stderr_text
    doc = daemon.inspect(f"busy{port}")
    assert doc["State"]["Running"] is False
    assert proxies_of(doc["Id"]) == [] and rules_for(port) == []
    daemon.cli("rm", doc["Id"])


def test_failed_start_leaves_no_rule_or_proxy(daemon):
    port = free_port()
    r = daemon.cli("run", "--name", f"nocmd{port}", "-p", f"{port}:80", "busybox",
                   "/no/such/command", check=False)
    assert r.returncode != 0
    doc = daemon.inspect(f"nocmd{port}")
    assert proxies_of(doc["Id"]) == [] and rules_for(port) == []
    with socket.socket() as s:          # the port is free again
        s.bind(("0.0.0.0", port))
    daemon.cli("rm", doc["Id"])


def test_invalid_port_spec(daemon):
    r = daemon.cli("run", "--rm", "-p", "abc:80", "busybox", "true", check=False)
    assert r.returncode != 0 and "invalid" in r.stderr_text.lower()
    r = daemon.cli("create", "-p", "70000:80", "busybox", "true", check=False)
    assert r.returncode != 0 and "invalid" in r.stderr_text.lower()


UDP_ECHO = ("import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0', 9999))\n"
            "while True:\n"
            "    data, addr = s.recvfrom(2048)\n"
            "    s.sendto(data.upper(), addr)\n")


def test_publish_all_random_port_and_udp(daemon):
    # busybox here has no UDP server (nc without -u): a UDP echo server runs in the
    # container's network namespace through nsenter instead
    cid = daemon.out("run", "-d", "-P", "--expose", "80", "-p", "127.0.0.1::9999/udp",
                     "busybox", "sh", "-c", HTTPD).strip()
    pid = daemon.inspect(cid)["State"]["Pid"]
    echo = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", UDP_ECHO])
    try:
        pairs = [line.split(" -> ") for line in daemon.out("port", cid).splitlines()]
        lines = dict(pairs)              # the last of each: [::] for the default binding
        assert set(lines) == {"80/tcp", "9999/udp"} and len(pairs) == 3
        assert ["80/tcp", lines["80/tcp"].replace("[::]", "0.0.0.0")] in pairs
        lines["80/tcp"] = lines["80/tcp"].replace("[::]", "0.0.0.0")
        ip, _, hp = lines["80/tcp"].rpartition(":")
        assert ip == "0.0.0.0"
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        assert lo <= int(hp) <= hi
        assert fetch(f"http://127.0.0.1:{hp}/").strip() == "hello-ports"
        uip, _, up = lines["9999/udp"].rpartition(":")
        assert uip == "127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            got = b""
            for _ in range(20):
                s.sendto(b"ping-udp", ("127.0.0.1", int(up)))
                try:
                    got = s.recv(2048)
                    break
                except socket.timeout:
                    continue
            assert got == b"PING-UDP"
        ps = daemon.out("ps", "--filter", f"id={cid}", "--format", "{{.Ports}}")
        assert f"0.0.0.0:{hp}->80/tcp" in ps and f"127.0.0.1:{up}->9999/udp" in ps
        def ps_ids(*filters: str) -> list[str]:
            args = [a for f in filters for a in ("--filter", f)]
            return daemon.out("ps", "-q", "--no-trunc", *args).split()
        assert cid in ps_ids("publish=80", "expose=80/tcp")
        assert cid in ps_ids("publish=9990-9999/udp")
        assert cid not in ps_ids("publish=9999/tcp")
        assert len(proxies_of(cid)) == 3
    finally:
        echo.kill()
        echo.wait()
        daemon.cli("rm", "-f", cid)
    assert proxies_of(cid) == []


def test_sdk_ports(daemon, sdk):
    port = free_port()
    c = sdk.containers.run("busybox", ["sh", "-c", HTTPD], detach=True,
                           ports={"80/tcp": port})
    try:
        assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-ports"
        c.reload()
        assert c.ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)},
                                      {"HostIp": "::", "HostPort": str(port)}]}
        listed = json.loads(daemon.out("ps", "--filter", f"id={c.id}", "--format",
                                       "{{json .}}"))
        assert listed["Ports"] == f"0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp"
    finally:
        c.remove(force=True)
    assert proxies_of(c.id) == [] and rules_for(port) == []


@pytest.mark.slow
def test_live_restore_keeps_published_port(fresh_daemon):
    d = fresh_daemon("--live-restore")
    port = free_port()
    cid = d.out("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
                HTTPD).strip()
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-ports"
    before = proxies_of(cid)
    d.restart()
    assert proxies_of(cid) == before
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-ports"
    assert d.out("port", cid).strip() == f"80/tcp -> 127.0.0.1:{port}"
    d.cli("rm", "-f", cid)
    assert proxies_of(cid) == []
