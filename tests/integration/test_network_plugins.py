"""Network and IPAM plugins (libnetwork's remote driver and remote IPAM) through the docker
CLI and the SDK: `network create -d <plugin> --ipam-driver <plugin>`, a container on the
plugin's network with the interface the plugin made (moved into the container under the
prefix it asked for, with the IPAM address, the gateway and a static route), connect and
disconnect, the IPAM plugin with the bridge driver, errors and their rollbacks, a missing
and a dead plugin. The plugin is tests/integration/netplugin_helpers.py's, in a private
plugin directory (never the host's)."""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import cleanup_daemon, make_daemon, start_with_plugin_dirs
from netplugin_helpers import NetworkPlugin
from plugin_helpers import free_port
from test_networks import free_subnet


@pytest.fixture(scope="module")
def env(images_dir):
    base = Path(tempfile.mkdtemp(prefix="pdt-netplg-", dir="/tmp"))
    sockets, specs = base / "run-plugins", base / "etc-plugins"
    sockets.mkdir()
    specs.mkdir()
    d = make_daemon(base / "daemon")
    start_with_plugin_dirs(d, sockets, specs)
    plugins: list[NetworkPlugin] = []
    try:
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        yield d, sockets, base, plugins
    finally:
        cleanup_daemon(d)
        for p in plugins:
            p.stop()
            p.remove_links()
        shutil.rmtree(base, ignore_errors=True)


def _plugin(env, name: str, **kw) -> NetworkPlugin:
    _d, sockets, base, plugins = env
    tag = f"{random.randint(0, 0xFFF):03x}"
    p = NetworkPlugin(str(base / f"root-{name}"), str(sockets / f"{name}.sock"), tag,
                      free_subnet()[0], **kw)
    plugins.append(p)
    return p.start()


def _methods(p: NetworkPlugin) -> list[str]:
    return [c.method for c in p.calls]


def _net(d, name: str) -> dict:
    return json.loads(d.out("network", "inspect", name))[0]


def test_plugin_network_with_plugin_ipam(env):
    d = env[0]
    p = _plugin(env, "pnfull")
    subnet = p.default_pool
    gw = subnet.replace(".0/24", ".1")
    d.cli("network", "create", "-d", "pnfull", "--ipam-driver", "pnfull", "-o", "foo=bar",
          "--ipam-opt", "io=1", "--label", "l=1", "pn-full")
    try:
        assert _methods(p) == [
            "Plugin.Activate", "NetworkDriver.GetCapabilities", "IpamDriver.GetCapabilities",
            "IpamDriver.GetDefaultAddressSpaces", "IpamDriver.RequestPool",
            "IpamDriver.RequestAddress", "NetworkDriver.CreateNetwork"]
        pool_req, gw_req, create = (c.body for c in p.calls[4:])
        assert pool_req == {"AddressSpace": "plocal", "Pool": "", "SubPool": "",
                            "Options": {"io": "1"}, "V6": False}
        pool_id = gw_req["PoolID"]
        assert gw_req == {"PoolID": pool_id, "Address": "",
                          "Options": {"RequestAddressType": "com.docker.network.gateway"}}
        net = _net(d, "pn-full")
        assert create == {
            "NetworkID": net["Id"],
            "Options": {"com.docker.network.enable_ipv6": False,
                        "com.docker.network.generic": {"foo": "bar"}},
            "IPv4Data": [{"AddressSpace": "plocal", "Gateway": f"{gw}/24", "Pool": subnet}],
            "IPv6Data": []}
        assert net["Driver"] == "pnfull" and net["Scope"] == "local"
        assert net["IPAM"] == {"Driver": "pnfull", "Options": {"io": "1"},
                               "Config": [{"Subnet": subnet, "Gateway": gw}]}
        assert net["Options"] == {"foo": "bar"} and net["Labels"] == {"l": "1"}
        assert "pn-full pnfull local" in d.out(
            "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").splitlines()

        # a container on it: the plugin's veth, moved in as eth0 with the IPAM address
        p.calls.clear()
        hport = free_port()
        cid = d.out("run", "-d", "--name", "pn-c1", "--network", "pn-full", "-p",
                    f"{hport}:80", "busybox", "sleep", "300").strip()
        assert _methods(p) == [
            "IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint", "NetworkDriver.Join",
            "NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.EndpointOperInfo"]
        addr_req, cep, join = (c.body for c in p.calls[:3])
        ip = gw.rsplit(".", 1)[0] + ".2"
        mac = addr_req["Options"]["com.docker.network.endpoint.macaddress"]
        assert addr_req == {"PoolID": pool_id, "Address": "",
                            "Options": {"com.docker.network.endpoint.macaddress": mac}}
        ports = {"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
                 "com.docker.network.portmap": [
                     {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": hport,
                      "HostPortEnd": hport}]}
        eid = cep["EndpointID"]
        assert cep == {"NetworkID": net["Id"], "EndpointID": eid,
                       "Interface": {"Address": f"{ip}/24", "AddressIPv6": "",
                                     "MacAddress": mac}, "Options": ports}
        assert join["SandboxKey"].endswith("/netns/" + cid) and join["Options"] == ports
        addr = d.out("exec", "pn-c1", "ip", "addr", "show", "eth0")
        assert f"inet {ip}/24" in addr and f"link/ether {mac}" in addr
        routes = d.out("exec", "pn-c1", "ip", "route").splitlines()
        assert f"default via {gw} dev eth0" in [r.strip() for r in routes]
        assert f"192.0.2.0/24 via {gw} dev eth0" in [r.strip() for r in routes]
        # the plugin's bridge carries the gateway: real traffic
        d.cli("exec", "pn-c1", "ping", "-c", "1", "-W", "5", gw)
        host_end, peer = p.veth_of(eid)
        assert not Path(f"/sys/class/net/{peer}").exists()       # moved into the container
        # the plugin publishes the ports (it got them), not the daemon: as dockerd; the
        # port map its EndpointOperInfo reports is not shown either (dockerd's
        # getEndpointPortMapInfo wants []types.PortBinding, a remote driver's is JSON)
        assert d.inspect("pn-c1")["NetworkSettings"]["Ports"] == {"80/tcp": None}
        assert f":{hport} " not in subprocess.run(["ss", "-ltnH"], capture_output=True,
                                                  text=True, check=True).stdout
        c = d.inspect("pn-c1")["NetworkSettings"]["Networks"]["pn-full"]
        assert (c["IPAddress"], c["Gateway"], c["MacAddress"], c["EndpointID"]) == \
            (ip, gw, mac, eid)
        members = _net(d, "pn-full")["Containers"]
        assert members[cid]["IPv4Address"] == f"{ip}/24" and members[cid]["EndpointID"] == eid

        # network rm refuses while the endpoint is there
        r = d.cli("network", "rm", "pn-full", check=False)
        assert r.returncode != 0 and "has active endpoints" in r.stderr_text

        # disconnect: the interface goes, the plugin hears Revoke, Leave, DeleteEndpoint
        p.calls.clear()
        d.cli("network", "disconnect", "pn-full", "pn-c1")
        assert _methods(p) == [
            "NetworkDriver.RevokeExternalConnectivity", "NetworkDriver.Leave",
            "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]
        assert p.calls[3].body == {"PoolID": pool_id, "Address": ip}
        assert "eth0" not in d.out("exec", "pn-c1", "ip", "link")
        assert not Path(f"/sys/class/net/{host_end}").exists()
        assert not p.endpoints

        # connect again with a fixed address: needs a network with a configured subnet
        r = d.cli("network", "connect", "--ip", ip, "pn-full", "pn-c1", check=False)
        assert r.returncode != 0 and "user specified IP address is supported only when " \
            "connecting to networks with user configured subnets" in r.stderr_text
        d.cli("network", "connect", "pn-full", "pn-c1")
        assert "eth0" in d.out("exec", "pn-c1", "ip", "link")
        p.calls.clear()
        d.cli("rm", "-f", "pn-c1")
        assert _methods(p) == [
            "NetworkDriver.RevokeExternalConnectivity", "NetworkDriver.Leave",
            "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]
    finally:
        d.cli("rm", "-f", "pn-c1", check=False)
        p.calls.clear()
        d.cli("network", "rm", "pn-full", check=False)
    assert _methods(p) == ["IpamDriver.ReleaseAddress", "IpamDriver.ReleasePool",
                           "NetworkDriver.DeleteNetwork"]
    assert not p.networks and not p.pools
    assert not Path(f"/sys/class/net/{p.bridge_of(net['Id'])}").exists()


def test_ipam_plugin_with_the_bridge_driver(env):
    d = env[0]
    p = _plugin(env, "pnipam", implements=("IpamDriver",), requires_mac=False)
    subnet = p.default_pool
    d.cli("network", "create", "--ipam-driver", "pnipam", "pn-br")
    try:
        net = _net(d, "pn-br")
        gw = subnet.replace(".0/24", ".1")
        assert net["Driver"] == "bridge" and net["IPAM"]["Driver"] == "pnipam"
        assert net["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": gw}]
        out = d.out("run", "--rm", "--network", "pn-br", "busybox", "sh", "-c",
                    f"ip addr show eth0; ip route; ping -c 1 -W 5 {gw}")
        ip = gw.rsplit(".", 1)[0] + ".2"
        assert f"inet {ip}/24" in out and f"default via {gw}" in out
        req = [c.body for c in p.calls_of("IpamDriver.RequestAddress")][-1]
        assert req["Address"] == "" and req["Options"] is None       # no MAC asked for
        rel = p.calls_of("IpamDriver.ReleaseAddress")
        assert [c.body["Address"] for c in rel] == [ip]
    finally:
        d.cli("network", "rm", "pn-br", check=False)
    assert p.calls[-2].method == "IpamDriver.ReleaseAddress" and \
        p.calls[-1].method == "IpamDriver.ReleasePool" and not p.pools


def test_plugin_driver_with_the_default_ipam_and_a_subnet(env):
    d = env[0]
    p = _plugin(env, "pndef", dst_prefix="pl")
    subnet, gw = free_subnet()
    d.cli("network", "create", "-d", "pndef", "--subnet", subnet, "--aux-address",
          f"a={gw.rsplit('.', 1)[0]}.9", "pn-def")
    try:
        create = p.calls_of("NetworkDriver.CreateNetwork")[0].body
        assert create["IPv4Data"] == [{"AddressSpace": "LocalDefault", "Gateway": f"{gw}/24",
                                       "Pool": subnet,
                                       "AuxAddresses": {"a": gw.rsplit('.', 1)[0] + ".9/24"}}]
        assert not p.calls_of("IpamDriver.RequestPool")
        ip = gw.rsplit(".", 1)[0] + ".77"
        out = d.out("run", "--rm", "--network", "pn-def", "--ip", ip, "busybox",
                    "ip", "addr")
        assert f"inet {ip}/24" in out and " pl0" in out        # DstPrefix "pl"
    finally:
        d.cli("network", "rm", "pn-def", check=False)


def test_ipam_plugin_with_a_configured_subnet(env):
    d = env[0]
    p = _plugin(env, "pnsub")
    subnet, _ = free_subnet()
    pre = subnet.rsplit(".", 1)[0]
    d.cli("network", "create", "-d", "pnsub", "--ipam-driver", "pnsub", "--subnet", subnet,
          "--gateway", f"{pre}.254", "--ip-range", f"{pre}.128/25", "--aux-address",
          f"a={pre}.9", "pn-sub")
    try:
        pool, gwr, aux = (c.body for c in p.calls if c.method.startswith("IpamDriver.Req"))
        assert (pool["Pool"], pool["SubPool"]) == (subnet, f"{pre}.128/25")
        assert gwr["Address"] == f"{pre}.254"
        assert aux == {"PoolID": gwr["PoolID"], "Address": f"{pre}.9", "Options": None}
        create = p.calls_of("NetworkDriver.CreateNetwork")[0].body
        assert create["IPv4Data"] == [{"AddressSpace": "plocal",
                                       "AuxAddresses": {"a": f"{pre}.9/24"},
                                       "Gateway": f"{pre}.254/24", "Pool": subnet}]
        assert _net(d, "pn-sub")["IPAM"]["Config"] == [
            {"Subnet": subnet, "IPRange": f"{pre}.128/25", "Gateway": f"{pre}.254",
             "AuxiliaryAddresses": {"a": f"{pre}.9"}}]
        # --ip: asked of the plugin, which gives it
        out = d.out("run", "--rm", "--network", "pn-sub", "--ip", f"{pre}.200", "busybox",
                    "ip", "addr", "show", "eth0")
        assert f"inet {pre}.200/24" in out
        assert p.calls_of("IpamDriver.RequestAddress")[-1].body["Address"] == f"{pre}.200"
    finally:
        d.cli("network", "rm", "pn-sub", check=False)
    released = [c.body["Address"] for c in p.calls_of("IpamDriver.ReleaseAddress")]
    assert released == [f"{pre}.200", f"{pre}.254", f"{pre}.9"] and not p.pools


def test_plugin_errors_roll_back(env):
    d = env[0]
    p = _plugin(env, "pnerr")
    # CreateNetwork refused: the pool goes back, no network
    p.fail["NetworkDriver.CreateNetwork"] = "create refused"
    r = d.cli("network", "create", "-d", "pnerr", "--ipam-driver", "pnerr", "pn-err",
              check=False)
    assert r.returncode != 0 and \
        "NetworkDriver.CreateNetwork: create refused" in r.stderr_text
    assert _methods(p)[-2:] == ["IpamDriver.ReleaseAddress", "IpamDriver.ReleasePool"]
    assert not p.pools and "pn-err" not in d.out("network", "ls")
    # the pool refused
    p.fail = {"IpamDriver.RequestPool": "no pool for you"}
    r = d.cli("network", "create", "-d", "pnerr", "--ipam-driver", "pnerr", "pn-err",
              check=False)
    assert r.returncode != 0 and "IpamDriver.RequestPool: no pool for you" in r.stderr_text
    # an error in a 200 answer (Err set) is libnetwork's "remote: ..."
    p.fail, p.errors_in_200 = {"NetworkDriver.CreateNetwork": "nope"}, True
    r = d.cli("network", "create", "-d", "pnerr", "pn-err", check=False)
    assert r.returncode != 0 and "remote: nope" in r.stderr_text
    p.fail, p.errors_in_200 = {}, False
    d.cli("network", "create", "-d", "pnerr", "--ipam-driver", "pnerr", "pn-err")
    try:
        # Join refused: the container does not start, endpoint and address are undone
        p.fail["NetworkDriver.Join"] = "join refused"
        p.calls.clear()
        r = d.cli("run", "--name", "pn-err-c", "--network", "pn-err", "busybox", "true",
                  check=False)
        assert r.returncode != 0 and "NetworkDriver.Join: join refused" in r.stderr_text
        assert _methods(p) == ["IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint",
                               "NetworkDriver.Join", "NetworkDriver.DeleteEndpoint",
                               "IpamDriver.ReleaseAddress"]
        assert not p.endpoints and _net(d, "pn-err")["Containers"] == {}
        # EndpointOperInfo refused: as dockerd, the join is undone
        p.fail = {"NetworkDriver.EndpointOperInfo": "oper refused"}
        p.calls.clear()
        r = d.cli("start", "pn-err-c", check=False)
        assert r.returncode != 0 and "Updating join info failed: " \
            "NetworkDriver.EndpointOperInfo: oper refused" in r.stderr_text
        assert _methods(p)[-4:] == ["NetworkDriver.RevokeExternalConnectivity",
                                    "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint",
                                    "IpamDriver.ReleaseAddress"]
        assert not p.endpoints
        assert all(len(used) == 1 for used in p.allocated.values())     # the gateway
        assert not [link for link in p.links if link.startswith("pnh")]
        # a plugin that would change the MAC it was given: libnetwork's refusal, rolled back
        p.fail, p.own_mac = {}, True
        p.calls.clear()
        r = d.cli("start", "pn-err-c", check=False)
        assert r.returncode != 0 and "driver modified interface MAC address: endpoint " \
            "interface MAC address present" in r.stderr_text
        assert _methods(p)[-3:] == ["NetworkDriver.CreateEndpoint",
                                    "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"]
        p.own_mac = False
        d.cli("start", "pn-err-c")
    finally:
        d.cli("rm", "-f", "pn-err-c", check=False)
        d.cli("network", "rm", "pn-err", check=False)


def test_global_scope_driver_and_own_mac(env):
    d = env[0]
    p = _plugin(env, "pnglob", scope="global")
    r = d.cli("network", "create", "-d", "pnglob", "pn-glob", check=False)
    assert r.returncode != 0 and 'This node is not a swarm manager. Use "docker swarm ' \
        'init" or "docker swarm join"' in r.stderr_text
    assert not p.calls_of("NetworkDriver.CreateNetwork") and not p.networks
    # with the default IPAM the endpoint has no MAC until the plugin gives one
    p2 = _plugin(env, "pnmac", own_mac=True)
    d.cli("network", "create", "-d", "pnmac", "pn-mac")
    try:
        out = d.out("run", "--rm", "--network", "pn-mac", "busybox", "ip", "link",
                    "show", "eth0")
        assert p2.calls_of("NetworkDriver.CreateEndpoint")[0].body["Interface"][
            "MacAddress"] == ""
        assert "link/ether 7a:00:00:00:00:01" in out
    finally:
        d.cli("network", "rm", "pn-mac", check=False)


def test_missing_and_dead_plugins(env):
    d = env[0]
    r = d.cli("network", "create", "-d", "pnnosuch", "pn-x", check=False)
    assert r.returncode != 0 and 'plugin "pnnosuch" not found' in r.stderr_text
    r = d.cli("network", "create", "--ipam-driver", "pnnosuch", "pn-x", check=False)
    assert r.returncode != 0 and 'plugin "pnnosuch" not found' in r.stderr_text
    assert "pn-x" not in d.out("network", "ls")
    p = _plugin(env, "pndead")
    d.cli("network", "create", "-d", "pndead", "--ipam-driver", "pndead", "pn-dead")
    try:
        p.stop()
        r = d.cli("run", "--rm", "--network", "pn-dead", "busybox", "true", check=False)
        assert r.returncode != 0 and "pndead.sock" in r.stderr_text and \
            "connection refused" in r.stderr_text
        assert d.out("version", "--format", "{{.Server.Version}}")      # still answers
        p.start()
        out = d.out("run", "--rm", "--network", "pn-dead", "busybox", "ip", "addr")
        assert p.default_pool.rsplit(".", 1)[0] in out
    finally:
        d.cli("network", "rm", "pn-dead", check=False)
    assert not p.networks


def test_sdk_plugin_network(env):
    import docker
    d = env[0]
    p = _plugin(env, "pnsdk")
    client = docker.DockerClient(base_url=d.host, timeout=60)
    net = None
    try:
        ipam = docker.types.IPAMConfig(driver="pnsdk", options={"k": "v"})
        net = client.networks.create("pn-sdk", driver="pnsdk", ipam=ipam,
                                     options={"o": "1"})
        assert net.attrs["Driver"] == "pnsdk" and net.attrs["IPAM"]["Driver"] == "pnsdk"
        c = client.containers.create("busybox", "sleep 300", network="pn-sdk")
        try:
            c.start()
            c.reload()
            ep = c.attrs["NetworkSettings"]["Networks"]["pn-sdk"]
            assert ep["IPAddress"].startswith(p.default_pool.rsplit(".", 1)[0])
            net.disconnect(c)
            net.connect(c)
            code, out = c.exec_run("ip addr show eth0")
            assert code == 0 and ep["IPAddress"] in out.decode()
        finally:
            c.remove(force=True)
        assert [n.name for n in client.networks.list(filters={"driver": "pnsdk"})] == \
            ["pn-sdk"]
    finally:
        if net is not None:
            net.remove()
        client.close()
    assert not p.networks


def test_internal_ipv6_plugin_network_and_a_restart(env):
    d, _sockets, base, _plugins = env
    p = _plugin(env, "pnsix")
    d.cli("network", "create", "-d", "pnsix", "--ipam-driver", "pnsix", "--internal",
          "--ipv6", "pn-six")
    try:
        create = p.calls_of("NetworkDriver.CreateNetwork")[0].body
        assert create["Options"] == {"com.docker.network.enable_ipv6": True,
                                     "com.docker.network.generic": {},
                                     "com.docker.network.internal": True}
        assert create["IPv6Data"] == [{"AddressSpace": "plocal",
                                       "Gateway": "fd00:7e57::1/64", "Pool": "fd00:7e57::/64"}]
        assert [c.body["V6"] for c in p.calls_of("IpamDriver.RequestPool")] == [False, True]
        net = _net(d, "pn-six")
        assert net["Internal"] is True and net["EnableIPv6"] is True
        d.cli("run", "-d", "--name", "pn-six-c", "--network", "pn-six", "busybox",
              "sleep", "300")
        cep = p.calls_of("NetworkDriver.CreateEndpoint")[-1].body
        assert cep["Interface"]["AddressIPv6"] == "fd00:7e57::2/64"
        assert cep["Options"] == {}      # no ports on an internal network (Join has them)
        assert p.calls_of("NetworkDriver.Join")[-1].body["Options"] == {
            "com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}
        assert not p.calls_of("NetworkDriver.ProgramExternalConnectivity")
        assert "inet6 fd00:7e57::2/64" in d.out("exec", "pn-six-c", "ip", "-6", "addr")
        ep = d.inspect("pn-six-c")["NetworkSettings"]["Networks"]["pn-six"]
        assert ep["GlobalIPv6Address"] == "fd00:7e57::2"
        # the plugin's gateway is the default route; a second network adds none
        d.cli("network", "connect", "bridge", "pn-six-c")
        routes = d.out("exec", "pn-six-c", "ip", "route")
        assert routes.count("default via") == 1 and "default via" in routes.splitlines()[0]
        d.cli("rm", "-f", "pn-six-c")
        # the network outlives a daemon restart, and is removed through the plugin after
        d.stop()
        start_with_plugin_dirs(d, base / "run-plugins", base / "etc-plugins")
        net2 = _net(d, "pn-six")
        assert (net2["Id"], net2["Driver"], net2["IPAM"]) == \
            (net["Id"], "pnsix", net["IPAM"])
    finally:
        d.cli("rm", "-f", "pn-six-c", check=False)
        p.calls.clear()
        d.cli("network", "rm", "pn-six", check=False)
    assert _methods(p) == ["Plugin.Activate", "IpamDriver.ReleaseAddress",
                           "IpamDriver.ReleasePool", "IpamDriver.ReleaseAddress",
                           "IpamDriver.ReleasePool", "NetworkDriver.DeleteNetwork"]
    assert not p.networks and not p.pools


def test_ipam_options_as_the_request_had_them(env):
    """IPAM.Options is null when the request had none and {} when it had {} (dockerd
    20.10 shows what the request had, with any driver): the CLI always sends {}."""
    import docker
    d = env[0]
    _plugin(env, "pnopts")
    client = docker.DockerClient(base_url=d.host, timeout=60)
    names = []
    try:
        for name, kw in (("pn-o-none", {"driver": "pnopts"}),
                         ("br-o-none", {}),
                         ("br-o-empty", {"ipam": {"Driver": "default", "Options": {}}})):
            client.api.create_network(name, **kw)
            names.append(name)
        d.cli("network", "create", "-d", "pnopts", "pn-o-cli")
        names.append("pn-o-cli")
        d.cli("network", "create", "br-o-cli")
        names.append("br-o-cli")
        got = {n: _net(d, n)["IPAM"]["Options"] for n in names}
        assert got == {"pn-o-none": None, "br-o-none": None, "br-o-empty": {},
                       "pn-o-cli": {}, "br-o-cli": {}}
    finally:
        for n in names:
            d.cli("network", "rm", n, check=False)
        client.close()


def test_default_route_and_external_connectivity_move(env):
    """When the network giving the default route is left, the next one takes it over:
    the route goes through its gateway and a plugin's endpoint gets
    ProgramExternalConnectivity (libnetwork's sbLeave re-evaluating its gateway
    endpoint); a later connect while another network gives the route gets none."""
    d = env[0]
    p = _plugin(env, "pnmove")
    p2 = _plugin(env, "pnmove2")        # its own static route (the same one twice clashes)
    sub_x, sub_a, sub_b = (free_subnet()[0] for _ in range(3))
    gw_a, gw_b = (s.replace(".0/24", ".1") for s in (sub_a, sub_b))
    d.cli("network", "create", "--subnet", sub_x, "mv-x")
    for name, sub, plugin in (("pn-mv-a", sub_a, "pnmove2"), ("pn-mv-b", sub_b, "pnmove")):
        d.cli("network", "create", "-d", plugin, "--ipam-driver", plugin, "--subnet",
              sub, name)
    try:
        d.out("run", "-d", "--name", "mv-c", "--network", "mv-x", "busybox", "sleep", "300")
        p.calls.clear()
        d.cli("network", "connect", "pn-mv-b", "mv-c")
        assert "NetworkDriver.ProgramExternalConnectivity" not in _methods(p)
        routes = lambda: [r.strip() for r in d.out("exec", "mv-c", "ip", "route").splitlines()]
        assert f"default via {sub_x.replace('.0/24', '.1')} dev eth0" in routes()

        p.calls.clear()
        d.cli("network", "disconnect", "mv-x", "mv-c")        # the plugin's takes over
        assert _methods(p) == ["NetworkDriver.ProgramExternalConnectivity"]
        b_eid = d.inspect("mv-c")["NetworkSettings"]["Networks"]["pn-mv-b"]["EndpointID"]
        assert p.calls[0].body == {"NetworkID": _net(d, "pn-mv-b")["Id"],
                                   "EndpointID": b_eid,
                                   "Options": {"com.docker.network.endpoint.exposedports": [],
                                               "com.docker.network.portmap": []}}
        assert f"default via {gw_b} dev eth1" in routes()

        p2.static_route = "198.51.100.0/24"
        d.cli("network", "connect", "pn-mv-a", "mv-c")
        assert "NetworkDriver.ProgramExternalConnectivity" not in _methods(p2)
        p.calls.clear()
        p2.calls.clear()
        d.cli("network", "disconnect", "pn-mv-b", "mv-c")     # revoked there, programmed
        methods = _methods(p)
        assert methods.index("NetworkDriver.RevokeExternalConnectivity") < \
            methods.index("NetworkDriver.Leave")
        assert _methods(p2) == ["NetworkDriver.ProgramExternalConnectivity"]
        assert f"default via {gw_a} dev eth0" in routes()
        d.cli("exec", "mv-c", "ping", "-c", "1", "-W", "5", gw_a)
        p2.calls.clear()
        d.cli("rm", "-f", "mv-c")                              # no takeover when it goes
        assert "NetworkDriver.ProgramExternalConnectivity" not in _methods(p2)
    finally:
        d.cli("rm", "-f", "mv-c", check=False)
        for n in ("mv-x", "pn-mv-a", "pn-mv-b"):
            d.cli("network", "rm", n, check=False)
