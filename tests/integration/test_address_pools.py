"""--default-address-pool and daemon.json's default-address-pools: networks created
without a subnet take theirs from the configured pools, split by size, as dockerd;
`docker info` lists them; bad pools stop the daemon from starting."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import _free_subnet

ROOT = Path(__file__).resolve().parents[2]


def _subnets(d, net: str) -> list[str]:
    doc = json.loads(d.out("network", "inspect", net))[0]
    return [c["Subnet"] for c in doc["IPAM"]["Config"]]


def test_networks_come_from_the_configured_pool(fresh_daemon):
    base = _free_subnet().rsplit(".", 1)[0] + ".0/24"        # a /24 no route uses
    prefix = base.rsplit(".", 1)[0]
    d = fresh_daemon("--default-address-pool", f"base={base},size=26")
    try:
        d.cli("network", "create", "pool-a")
        d.cli("network", "create", "pool-b")
        assert _subnets(d, "pool-a") == [f"{prefix}.0/26"]
        assert _subnets(d, "pool-b") == [f"{prefix}.64/26"]
        out = d.out("run", "--rm", "--network", "pool-b", "busybox", "ip", "-4", "-o", "addr",
                    "show", "eth0")
        assert f"inet {prefix}.66/26" in out
        d.cli("network", "rm", "pool-a")
        d.cli("network", "create", "pool-c")        # the freed subnet is used again
        assert _subnets(d, "pool-c") == [f"{prefix}.0/26"]
        info = json.loads(d.out("info", "--format", "{{json .DefaultAddressPools}}"))
        assert info == [{"Base": base, "Size": 26}]
        assert f"Base: {base}, Size: 26" in d.out("info")
    finally:
        for n in ("pool-a", "pool-b", "pool-c"):
            d.cli("network", "rm", n, check=False)


def test_pools_from_daemon_json_with_ipv6_and_exhaustion(fresh_daemon):
    base = _free_subnet().rsplit(".", 1)[0] + ".0/24"
    prefix = base.rsplit(".", 1)[0]
    d = fresh_daemon()
    d.stop()
    (d.base / "daemon.json").write_text(json.dumps({"default-address-pools": [
        {"base": base, "size": 25}, {"base": "fd5e:1a2b:3c4d::/56", "size": 64}]}))
    d.start()
    try:
        d.cli("network", "create", "--ipv6", "p6")
        assert _subnets(d, "p6") == [f"{prefix}.0/25", "fd5e:1a2b:3c4d::/64"]
        d.cli("network", "create", "p4")
        assert _subnets(d, "p4") == [f"{prefix}.128/25"]
        r = d.cli("network", "create", "p-none", check=False)
        assert r.returncode != 0
        assert b"could not find an available, non-overlapping IPv4 address pool among the " \
            b"defaults to assign to the network" in r.stderr
        assert "p-none" not in d.out("network", "ls", "--format", "{{.Name}}").split()
    finally:
        for n in ("p6", "p4"):
            d.cli("network", "rm", n, check=False)


def _validate(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "pydockerd", *args, "--validate"],
                          capture_output=True, text=True, env=env, timeout=30)


def test_bad_pools_are_refused_at_start(tmp_path):
    none = str(tmp_path / "none.json")
    r = _validate("--config-file", none, "--default-address-pool", "base=10.9.0.0/16,size=8")
    assert r.returncode != 0
    assert "network at index 0 (10.9.0.0/16 8) has a smaller prefix (/16) than the target " \
        "size of that pool (/8)" in r.stderr
    r = _validate("--config-file", none, "--default-address-pool", "base=10.9.0.0/16,sz=24")
    assert r.returncode != 0 and "unexpected key 'sz' in 'sz=24'" in r.stderr
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"default-address-pools": [{"base": "10.9.0.0/16"}]}))
    r = _validate("--config-file", str(cfg))
    assert r.returncode != 0 and "is not in canonical form" in r.stderr
    cfg.write_text(json.dumps({"default-address-pools": [{"base": "10.9.0.0/16", "size": 24}]}))
    r = _validate("--config-file", str(cfg))
    assert r.returncode == 0, r.stderr
