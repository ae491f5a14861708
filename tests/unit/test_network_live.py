"""The bridge, sandboxes and veths for real (root only; skipped otherwise).

Uses bridges and subnets of its own, named after the process (concurrent runs
never share them), and pings only the bridge's own address from inside the
container namespace.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from pydockerd.events import EventBus
from pydockerd.network import NetworkService
from pydockerd.network.ipam import mac_for_ip
from pydockerd.store import Store

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "iptables", "nsenter",
                                                          "unshare", "busybox")),
    reason="needs root, iproute2, iptables, util-linux and busybox")

_N = os.getpid() % 80                  # 10.199.<3N..3N+2>: three subnets per run
BRIDGE = f"pdtest{os.getpid() % 0x10000:04x}"
NET1, NET2, NET3 = (f"10.199.{3 * _N + i}" for i in range(3))
BIP = f"{NET1}.1/24"


def sh(cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True)


def _pings(netns: str, ip: str, deadline: float = 10) -> bool:
    """One ping answered within `deadline` seconds (a loaded machine may lose the first)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if sh(f"nsenter --net={netns} busybox ping -c1 -W1 {ip}").returncode == 0:
            return True
    return False


def make_store(path: Path) -> Store:
    db = sqlite3.connect(path)      # schema v1 up front (works with or without migrations)
    db.executescript("CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, id TEXT NOT NULL,"
                     " data TEXT NOT NULL, PRIMARY KEY (kind, id)); PRAGMA user_version=1;")
    db.close()
    return Store(str(path))


class NoContainers:
    def name_of(self, container_id: str) -> str | None:
        return None

    def endpoint_links(self, container_id: str, network: str) -> dict[str, str]:
        return {}

    def dns_servers(self, container_id: str) -> list[str]:
        return []


def service(store: Store, tmp: Path) -> NetworkService:
    return NetworkService(store, EventBus(), str(tmp / "exec"), containers=NoContainers(),
                          bridge_name=BRIDGE, bip=BIP, ip_forward=False)


def test_bridge_sandbox_connect_restart_cleanup(tmp_path: Path) -> None:
    if sh(f"ip link show {BRIDGE}").returncode == 0:
        pytest.skip(f"{BRIDGE} already exists")
    store = make_store(tmp_path / "db")

    async def scenario() -> None:
        svc = service(store, tmp_path)
        await svc.start()
        try:
            assert f"{NET1}.1/24" in sh(f"ip -4 addr show {BRIDGE}").stdout
            assert sh(f"iptables -C FORWARD -j PYDOCKER-{BRIDGE}").returncode == 0
            assert sh(f"iptables -t nat -C POSTROUTING -j PYDOCKER-{BRIDGE}").returncode == 0
            bridge_id = svc.get("bridge").id
            cid1, cid2 = "1" * 64, "2" * 64
            ns1 = await svc.create_sandbox(cid1)
            ep1 = await svc.connect(cid1, ns1)
            assert (ep1.ip, ep1.gateway, ep1.prefix_len) == (f"{NET1}.2", f"{NET1}.1", 24)
            assert ep1.mac == mac_for_ip(ipaddress.IPv4Address(f"{NET1}.2"))
            addr = sh(f"nsenter --net={ns1} ip -4 -o addr show dev eth0").stdout
            assert f"{NET1}.2/24" in addr
            assert _pings(ns1, f"{NET1}.1")
            assert sh(f"ip link show {ep1.host_veth}").stdout.count(f"master {BRIDGE}") == 1

            # a restarted service keeps the network id and the leases
            svc2 = service(store, tmp_path)
            await svc2.start()
            assert svc2.get("bridge").id == bridge_id
            assert svc2.endpoint(cid1) == ep1
            ns2 = await svc2.create_sandbox(cid2)
            ep2 = await svc2.connect(cid2, ns2)
            assert ep2.ip == f"{NET1}.3"

            # a failed connect leaves nothing behind
            with pytest.raises(Exception):
                await svc2.connect("3" * 64, str(tmp_path / "missing-netns"))
            assert svc2.endpoint("3" * 64) is None
            assert len(store.all("ipam")) == 2

            await svc2.release_sandbox(cid1)
            await svc2.release_sandbox(cid1)                 # idempotent
            assert sh(f"ip link show {ep1.host_veth}").returncode != 0
            assert not os.path.exists(ns1)
            assert len(store.all("ipam")) == 1
            svc = svc2
        finally:
            await svc.cleanup()
        assert sh(f"ip link show {BRIDGE}").returncode != 0
        assert f"PYDOCKER-{BRIDGE}" not in sh("iptables -S; iptables -t nat -S").stdout
        assert os.listdir(tmp_path / "exec" / "netns") == []
        assert str(tmp_path) not in sh("findmnt -l -o TARGET").stdout

    asyncio.run(scenario())


def test_existing_bridge_is_reused_not_deleted(tmp_path: Path) -> None:
    name = f"pdtesu{os.getpid() % 0x10000:04x}"
    if sh(f"ip link show {name}").returncode == 0:
        pytest.skip(f"{name} already exists")
    assert sh(f"ip link add {name} type bridge && ip addr add {NET2}.1/24 dev {name} && "
              f"ip link set {name} up").returncode == 0
    try:
        store = make_store(tmp_path / "db")

        async def scenario() -> None:
            svc = NetworkService(store, EventBus(), str(tmp_path / "exec"),
                                 containers=NoContainers(), bridge_name=name,
                                 bip=f"{NET3}.1/24", iptables=False, ip_forward=False)
            await svc.start()
            net = svc.get("bridge")
            assert (net.subnet, net.gateway) == (f"{NET2}.0/24", f"{NET2}.1")
            await svc.cleanup()
        asyncio.run(scenario())
        assert sh(f"ip link show {name}").returncode == 0
    finally:
        sh(f"ip link del {name}")
