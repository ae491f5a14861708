"""Endpoint settings as dockerd keeps and applies them: inspect before start, MAC
addresses (per endpoint and the deprecated container-wide one), libnetwork's network
names, IPAM auxiliary addresses, and `network connect` switching a running container to
the embedded DNS. Through the docker CLI and the SDK; everything made is removed."""
from __future__ import annotations

import json
import random
import subprocess
import uuid

import pytest


def _free_prefix(taken: set[str] = set()) -> str:
    used = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for _ in range(100):
        prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 250)}"
        if f"{prefix}." not in used and prefix not in taken:
            taken.add(prefix)
            return prefix
    raise RuntimeError("no free subnet")


@pytest.fixture
def made(daemon):
    """Names of containers and networks to remove after the test, whatever happens."""
    tag = uuid.uuid4().hex[:6]
    things: dict[str, list[str]] = {"containers": [], "networks": [], "tag": [tag]}
    yield things
    for c in things["containers"]:
        daemon.cli("rm", "-f", c, check=False)
    for n in things["networks"]:
        daemon.cli("network", "rm", n, check=False)


def _network(daemon, made, name: str, *args: str) -> str:
    """A network on a fresh 10.x.y.0/24; returns its address prefix ("10.x.y")."""
    prefix = _free_prefix()
    made["networks"].append(name)
    daemon.out("network", "create", "--subnet", f"{prefix}.0/24", *args, name)
    return prefix


def sh(daemon, ctr: str, cmd: str, check: bool = True) -> str:
    return daemon.cli("exec", ctr, "sh", "-c", cmd, check=check).stdout_text


def test_endpoint_settings_shown_before_start_and_applied(daemon, made):
    tag = made["tag"][0]
    net = f"pde-{tag}"
    prefix = _network(daemon, made, net)
    mac = "02:42:0a:de:ad:01"
    target = f"tgt-{tag}"
    made["containers"] += [target, f"c-{tag}", f"late-{tag}"]
    daemon.out("create", "--name", target, "--network", net, "busybox", "sleep", "300")
    # the CLI's advanced --network syntax sends one EndpointSettings with every field
    daemon.out("create", "--name", f"c-{tag}", "--network",
               f"name={net},alias=a1,alias=a2,ip={prefix}.50,mac-address={mac},"
               f"driver-opt=com.example.k=v", "busybox", "sleep", "300")
    ep = daemon.inspect(f"c-{tag}")["NetworkSettings"]["Networks"][net]
    assert ep["IPAMConfig"] == {"IPv4Address": f"{prefix}.50"}
    assert ep["Aliases"] == ["a1", "a2"] and ep["MacAddress"] == mac
    assert ep["DriverOpts"] == {"com.example.k": "v"}
    assert ep["IPAddress"] == "" and ep["EndpointID"] == ""
    # started: the interface has the address and the MAC asked for
    daemon.out("start", f"c-{tag}")
    assert sh(daemon, f"c-{tag}", "cat /sys/class/net/eth0/address").strip() == mac
    assert f"inet {prefix}.50/24" in sh(daemon, f"c-{tag}", "ip -4 addr show eth0")
    ep = daemon.inspect(f"c-{tag}")["NetworkSettings"]["Networks"][net]
    assert ep["MacAddress"] == mac and ep["IPAddress"] == f"{prefix}.50"
    assert ep["DriverOpts"] == {"com.example.k": "v"}
    # network connect of a created container: kept and shown as given
    daemon.out("create", "--name", f"late-{tag}", "busybox", "sleep", "300")
    daemon.out("network", "connect", "--alias", "z1", "--ip", f"{prefix}.66",
               "--driver-opt", "k2=v2", net, f"late-{tag}")
    ep = daemon.inspect(f"late-{tag}")["NetworkSettings"]["Networks"][net]
    assert ep["IPAMConfig"] == {"IPv4Address": f"{prefix}.66"} and ep["Aliases"] == ["z1"]
    assert ep["DriverOpts"] == {"k2": "v2"}


def test_endpoint_links_echoed(daemon, made):
    """EndpointSettings.Links are kept as sent (inspect), as dockerd does before start."""
    import docker
    tag = made["tag"][0]
    net = f"pdl-{tag}"
    _network(daemon, made, net)
    api = docker.APIClient(base_url=daemon.host, timeout=60)
    try:
        made["containers"] += [f"t-{tag}", f"l-{tag}"]
        api.create_container("busybox", ["sleep", "300"], name=f"t-{tag}",
                             host_config=api.create_host_config(network_mode=net))
        nc = api.create_networking_config({net: api.create_endpoint_config(
            links={f"t-{tag}": "db"})})
        api.create_container("busybox", ["sleep", "300"], name=f"l-{tag}",
                             host_config=api.create_host_config(network_mode=net),
                             networking_config=nc)
        ep = api.inspect_container(f"l-{tag}")["NetworkSettings"]["Networks"][net]
        assert ep["Links"] == [f"t-{tag}:db"]
    finally:
        api.close()


def test_container_wide_mac_address(daemon, made):
    """Config.MacAddress: the only MAC field before API 1.44 (applied to the main
    network's interface), deprecated (moved, with a warning) from 1.44 on."""
    import docker
    tag = made["tag"][0]
    old = docker.APIClient(base_url=daemon.host, version="1.43", timeout=60)
    new = docker.APIClient(base_url=daemon.host, version="1.50", timeout=60)
    try:
        mac = "02:42:0a:de:ad:02"
        made["containers"] += [f"m-{tag}", f"n-{tag}"]
        old.create_container("busybox", ["sleep", "300"], name=f"m-{tag}", mac_address=mac)
        doc = old.inspect_container(f"m-{tag}")
        assert doc["Config"]["MacAddress"] == mac
        assert doc["NetworkSettings"]["Networks"]["bridge"]["MacAddress"] == mac
        old.start(f"m-{tag}")
        assert sh(daemon, f"m-{tag}", "cat /sys/class/net/eth0/address").strip() == mac
        assert old.inspect_container(f"m-{tag}")["NetworkSettings"]["MacAddress"] == mac
        # API 1.50: moved to the endpoint, with dockerd's deprecation warning
        resp = new.create_container("busybox", ["sleep", "300"], name=f"n-{tag}",
                                    mac_address="02:42:0a:de:ad:03")
        assert any("MacAddress field is now deprecated" in w for w in resp["Warnings"])
        doc = new.inspect_container(f"n-{tag}")
        assert doc["NetworkSettings"]["Networks"]["bridge"]["MacAddress"] == \
            "02:42:0a:de:ad:03"
        # refused with host networking, and a malformed address is a 400 at create
        with pytest.raises(docker.errors.APIError) as e:
            old.create_container("busybox", "true", mac_address=mac,
                                 host_config=old.create_host_config(network_mode="host"))
        assert e.value.status_code == 400
        assert "conflicting options: mac-address and the network mode" in str(e.value)
        with pytest.raises(docker.errors.APIError) as e:
            old.create_container("busybox", "true", mac_address="zz")
        assert e.value.status_code == 400 and "invalid MAC address zz" in str(e.value)
    finally:
        old.close()
        new.close()


def test_network_names_as_libnetwork(daemon, made):
    tag = made["tag"][0]
    name = f"test {tag} 01"
    _network(daemon, made, name)
    assert name in daemon.out("network", "ls", "--format", "{{.Name}}").splitlines()
    assert daemon.out("run", "--rm", "--network", name, "busybox", "ip", "-4", "-o",
                      "addr", "show", "eth0").strip()
    r = daemon.cli("network", "create", " ", check=False)
    assert r.returncode != 0 and "invalid name: name is empty" in r.stderr_text
    r = daemon.cli("network", "create", "bridge", check=False)
    assert "operation is not permitted on predefined bridge network" in r.stderr_text


def test_auxiliary_addresses_kept_reserved_shown(daemon, made, sdk):
    import docker
    tag = made["tag"][0]
    net = f"pdx-{tag}"
    prefix = _free_prefix()
    made["networks"].append(net)
    daemon.out("network", "create", "--subnet", f"{prefix}.0/24", "--aux-address",
               f"router={prefix}.2", "--aux-address", f"nas={prefix}.3", net)
    cfg = json.loads(daemon.out("network", "inspect", net))[0]["IPAM"]["Config"]
    assert cfg == [{"Subnet": f"{prefix}.0/24", "Gateway": f"{prefix}.1",
                    "AuxiliaryAddresses": {"router": f"{prefix}.2", "nas": f"{prefix}.3"}}]
    made["containers"].append(f"x-{tag}")
    daemon.out("run", "-d", "--name", f"x-{tag}", "--network", net, "busybox", "sleep", "300")
    ep = daemon.inspect(f"x-{tag}")["NetworkSettings"]["Networks"][net]
    assert ep["IPAddress"] == f"{prefix}.4"           # .2 and .3 are never handed out
    r = daemon.cli("run", "--rm", "--network", net, "--ip", f"{prefix}.3", "busybox", "true",
                   check=False)
    assert r.returncode != 0 and "Address already in use" in r.stderr_text
    # the daemon checks what the CLI would: an address outside the subnet is a 400
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
        subnet=f"{prefix}.0/24", aux_addresses={"a": "192.0.2.1"})])
    with pytest.raises(docker.errors.APIError) as e:
        sdk.networks.create(f"pdy-{tag}", ipam=ipam)
    assert e.value.status_code == 400
    assert f"invalid auxiliary address a: parent subnet {prefix}.0/24 doesn't contain " \
        "this address" in str(e.value)


def test_connect_switches_resolv_conf_to_embedded_dns(daemon, made):
    tag = made["tag"][0]
    net = f"pdd-{tag}"
    _network(daemon, made, net)
    made["containers"] += [f"srv-{tag}", f"cli-{tag}"]
    daemon.out("run", "-d", "--name", f"srv-{tag}", "--network", net, "busybox", "sleep",
               "300")
    daemon.out("run", "-d", "--name", f"cli-{tag}", "busybox", "sleep", "300")
    before = sh(daemon, f"cli-{tag}", "cat /etc/resolv.conf")
    inode = sh(daemon, f"cli-{tag}", "ls -i /etc/resolv.conf").split()[0]
    assert "127.0.0.11" not in before
    daemon.out("network", "connect", net, f"cli-{tag}")
    after = sh(daemon, f"cli-{tag}", "cat /etc/resolv.conf")
    assert "nameserver 127.0.0.11" in after and "ndots:0" in after
    assert sh(daemon, f"cli-{tag}", "ls -i /etc/resolv.conf").split()[0] == inode
    # the new network's containers resolve by name at once, without a restart
    assert "Address" in sh(daemon, f"cli-{tag}", f"nslookup srv-{tag}")
    sh(daemon, f"cli-{tag}", f"ping -c1 -W2 srv-{tag}")


def test_connect_leaves_a_user_edited_resolv_conf_alone(daemon, made):
    tag = made["tag"][0]
    net = f"pde-{tag}"
    _network(daemon, made, net)
    made["containers"].append(f"edit-{tag}")
    daemon.out("run", "-d", "--name", f"edit-{tag}", "busybox", "sleep", "300")
    sh(daemon, f"edit-{tag}", "echo 'nameserver 10.9.9.9' > /etc/resolv.conf")
    daemon.out("network", "connect", net, f"edit-{tag}")
    # as moby: once edited, the file is the user's (until the next start)
    assert sh(daemon, f"edit-{tag}", "cat /etc/resolv.conf") == "nameserver 10.9.9.9\n"
    daemon.out("restart", "-t", "0", f"edit-{tag}")
    assert "nameserver 127.0.0.11" in sh(daemon, f"edit-{tag}", "cat /etc/resolv.conf")


def test_ipv4_only_interface_has_no_ipv6_address(daemon, made):
    """An interface given only an IPv4 address has no IPv6 one, not even link-local
    (as dockerd 26.0.2+): it sends no DAD, MLD or router solicitation for the bridge
    to flood to every other container."""
    tag = made["tag"][0]
    made["containers"].append(f"v4-{tag}")
    daemon.out("run", "-d", "--name", f"v4-{tag}", "busybox", "sleep", "300")
    assert "inet " in sh(daemon, f"v4-{tag}", "ip -4 addr show eth0")
    # /proc/net/if_inet6: one line per IPv6 address, the interface's name last
    lines = sh(daemon, f"v4-{tag}", "cat /proc/net/if_inet6").splitlines()
    assert not [line for line in lines if line.split()[-1] == "eth0"], lines
    assert sh(daemon, f"v4-{tag}", "ip -6 addr show eth0").strip() == ""
