"""Managed plugins of the other kinds, through the docker CLI and the SDK: a network +
IPAM plugin (host network namespace and CAP_NET_ADMIN from its config, as real network
plugins ask) driving `docker network create -d tnp --ipam-driver tnp` and a container on
it, and an authorization plugin named by `--authorization-plugin tap:latest` that the
daemon finds among its enabled plugins at start, denies by its rule, and drops from the
chain when it is disabled (as dockerd). The plugins are managed_kinds_helpers.py's; the
plugin socket directory is private (never the host's /run/docker/plugins)."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
import docker.errors
import pytest

from conftest import cleanup_daemon, make_daemon
from managed_kinds_helpers import calls, write_authz_plugin, write_net_plugin
from test_managed_plugins import _start
from test_networks import free_subnet


@pytest.fixture(scope="module")
def env(images_dir):
    base = Path(tempfile.mkdtemp(prefix="pdt-mkind-", dir="/tmp"))
    sockets = Path(tempfile.mkdtemp(prefix="pk", dir="/tmp"))      # short: see _start
    (sockets / "specs").mkdir()
    d = make_daemon(base / "daemon")
    try:
        _start(d, sockets)
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        yield d, sockets, base
    finally:
        if d.proc is not None:
            for name in d.out("plugin", "ls", "-q", check=False).split():
                d.cli("plugin", "rm", "-f", name, check=False)
        cleanup_daemon(d)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


def _inspect(d, name: str) -> dict:
    return json.loads(d.out("plugin", "inspect", name))[0]


def _links(tag: str) -> list[str]:
    return [n for n in os.listdir("/sys/class/net")
            if any(n.startswith(p + tag) for p in ("pnb", "pnh", "pnc"))]


def test_managed_network_and_ipam_plugin(env):
    d, _sockets, base = env
    tag = f"{random.randint(0, 0xFFF):03x}"
    subnet = free_subnet()[0]
    gw = subnet.replace(".0/24", ".1")
    ctx = write_net_plugin(Path(tempfile.mkdtemp(dir=base)), tag, subnet)
    try:
        d.cli("plugin", "create", "tnp", str(ctx))
        p = _inspect(d, "tnp")
        assert p["Config"]["Network"]["Type"] == "host"
        d.cli("plugin", "enable", "tnp")
        rootfs = Path(d.data_root) / "plugins" / p["Id"] / "rootfs"

        d.cli("network", "create", "-d", "tnp", "--ipam-driver", "tnp", "mnet")
        net = json.loads(d.out("network", "inspect", "mnet"))[0]
        assert net["Driver"] == "tnp" and net["IPAM"]["Driver"] == "tnp"
        assert net["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": gw}]
        asked = [m for m, _ in calls(rootfs)]
        assert asked == ["NetworkDriver.GetCapabilities", "IpamDriver.GetCapabilities",
                         "IpamDriver.GetDefaultAddressSpaces", "IpamDriver.RequestPool",
                         "IpamDriver.RequestAddress", "NetworkDriver.CreateNetwork"]
        # the plugin made its bridge in the host's namespace
        assert Path(f"/sys/class/net/pnb{tag}{net['Id'][:6]}").exists()

        d.out("run", "-d", "--name", "mnet-c", "--network", "mnet", "busybox",
              "sleep", "300")
        ip = gw.rsplit(".", 1)[0] + ".2"
        assert f"inet {ip}/24" in d.out("exec", "mnet-c", "ip", "addr", "show", "eth0")
        d.cli("exec", "mnet-c", "ping", "-c", "1", "-W", "5", gw)     # real traffic
        assert d.inspect("mnet-c")["NetworkSettings"]["Networks"]["mnet"]["IPAddress"] \
            == ip
        assert "NetworkDriver.Join" in [m for m, _ in calls(rootfs)]

        # its network holds it, as dockerd's reference count
        for verb in ("disable", "rm"):
            r = d.cli("plugin", verb, "tnp", check=False)
            assert r.returncode != 0 and "plugin tnp:latest is in use" in r.stderr_text
        d.cli("rm", "-f", "mnet-c")
        d.cli("network", "rm", "mnet")
        asked = [m for m, _ in calls(rootfs)]
        assert asked[-3:] == ["IpamDriver.ReleaseAddress", "IpamDriver.ReleasePool",
                              "NetworkDriver.DeleteNetwork"]
        assert _links(tag) == []
        d.cli("plugin", "disable", "tnp")
        r = d.cli("network", "create", "-d", "tnp", "mnet2", check=False)
        assert r.returncode != 0 and "plugin tnp found but disabled" in r.stderr_text
    finally:
        d.cli("rm", "-f", "mnet-c", check=False)
        d.cli("network", "rm", "mnet", check=False)
        d.cli("plugin", "rm", "-f", "tnp", check=False)
        for link in _links(tag):
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


def test_managed_authorization_plugin(env):
    d, sockets, base = env
    ctx = write_authz_plugin(Path(tempfile.mkdtemp(dir=base)), "/volumes/create")
    args = list(d.extra_args)
    sdk = None
    try:
        d.cli("plugin", "create", "tap", str(ctx))
        p = _inspect(d, "tap")
        rootfs = Path(d.data_root) / "plugins" / p["Id"] / "rootfs"
        d.cli("plugin", "enable", "tap")
        # named on the command line: found among the enabled plugins at start
        d.stop()
        d.extra_args = [*args, "--authorization-plugin", "tap"]
        _start(d, sockets)
        sdk = docker.DockerClient(base_url=d.host, timeout=60)
        assert sdk.info()["Plugins"]["Authorization"] == ["tap"]
        with pytest.raises(docker.errors.APIError) as e:
            sdk.volumes.create("denied")
        assert e.value.status_code == 403 and e.value.explanation == \
            "authorization denied by plugin tap:latest: no /volumes/create here"
        assert "denied" not in d.out("volume", "ls", "-q").split()
        phases = [(ph, req["RequestUri"]) for ph, req in calls(rootfs)]
        assert any(ph == "AuthZReq" and u.endswith("/volumes/create") for ph, u in phases)
        assert any(ph == "AuthZRes" and u.endswith("/info") for ph, u in phases)

        # disabled: it leaves the chain (dockerd's RemovePlugin), requests go on
        d.cli("plugin", "disable", "tap")
        sdk.volumes.create("allowed").remove()
        d.cli("plugin", "enable", "tap")
        sdk.volumes.create("allowed2").remove()          # enabling does not bring it back
    finally:
        if sdk is not None:
            sdk.close()
        d.cli("plugin", "rm", "-f", "tap", check=False)
        if d.extra_args != args:
            d.stop()
            d.extra_args = args
            _start(d, sockets)
