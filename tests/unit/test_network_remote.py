"""The remote network driver's and remote IPAM's request and response shapes
(network/remote.py, network/ipam_remote.py, plugnets.py), against a fake plugin client:
what is sent for each call, how answers are read, libnetwork's errors."""
from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from pydockerd.errors import Forbidden, SystemError_
from pydockerd.models import EndpointSettings
from pydockerd.network import plugnets
from pydockerd.network.endpoints import endpoint_options
from pydockerd.network.ipam_remote import RemoteIpam
from pydockerd.network.model import ExposedPort, Network, PortBinding, PortOptions
from pydockerd.network.remote import IPAMData, RemoteDriver, StaticRoute
from pydockerd.network.usernets import NetworkRequest
from pydockerd.plugins import Plugin, PluginCallError


class FakeClient:
    """Answers each method from `answers` (a dict, or an exception to raise)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Any]] = []

    async def call(self, method: str, args: Any = None, retry: bool = True) -> dict[str, Any]:
        self.calls.append((method, args))
        a = self.answers.get(method, {})
        if isinstance(a, Exception):
            raise a
        return dict(a)


def _plugin(answers: dict[str, Any]) -> tuple[Plugin, FakeClient]:
    client = FakeClient(answers)
    return Plugin("fake", client, ("NetworkDriver", "IpamDriver")), client  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_driver_calls_and_answers() -> None:
    p, c = _plugin({
        "NetworkDriver.GetCapabilities": {"Scope": "global"},
        "NetworkDriver.CreateEndpoint": {"Interface": {"AddressIPv6": "fd00::5/64"}},
        "NetworkDriver.Join": {"InterfaceName": {"SrcName": "veth0", "DstPrefix": "eth"},
                               "Gateway": "10.0.0.1", "StaticRoutes": [
                                   {"Destination": "192.0.2.7/24", "RouteType": 1},
                                   {"Destination": "198.51.100.0/24", "RouteType": 0,
                                    "NextHop": "10.0.0.254"}],
                               "DisableGatewayService": True},
        "NetworkDriver.EndpointOperInfo": {"Value": {"a": 1}},
    })
    d = RemoteDriver(p)
    caps = run(d.capabilities())
    assert (caps.scope, caps.connectivity_scope) == ("global", "global")
    run(d.create_network("n1", {"x": 1}, [IPAMData("sp", "10.0.0.0/24", "10.0.0.1/24",
                                                   {"a": "10.0.0.9/24"})], []))
    assert c.calls[-1] == ("NetworkDriver.CreateNetwork", {
        "NetworkID": "n1", "Options": {"x": 1}, "IPv4Data": [
            {"AddressSpace": "sp", "AuxAddresses": {"a": "10.0.0.9/24"},
             "Gateway": "10.0.0.1/24", "Pool": "10.0.0.0/24"}], "IPv6Data": []})
    out = run(d.create_endpoint("n1", "e1", "10.0.0.2/24", "", "02:42:0a:00:00:02", {}))
    assert c.calls[-1][1]["Interface"] == {"Address": "10.0.0.2/24", "AddressIPv6": "",
                                           "MacAddress": "02:42:0a:00:00:02"}
    assert (out.address, out.address6, out.mac) == ("", "fd00::5/64", "")
    j = run(d.join("n1", "e1", "/run/netns/x", {}))
    assert c.calls[-1] == ("NetworkDriver.Join", {"NetworkID": "n1", "EndpointID": "e1",
                                                  "SandboxKey": "/run/netns/x", "Options": {}})
    assert (j.src_name, j.dst_prefix, j.gateway, j.disable_gateway_service) == \
        ("veth0", "eth", "10.0.0.1", True)
    assert j.routes == (StaticRoute("192.0.2.0/24", 1, ""),
                        StaticRoute("198.51.100.0/24", 0, "10.0.0.254"))
    assert run(d.endpoint_oper_info("n1", "e1")) == {"a": 1}
    for verb in ("Leave", "DeleteEndpoint"):
        run(getattr(d, {"Leave": "leave", "DeleteEndpoint": "delete_endpoint"}[verb])("n1", "e1"))
        assert c.calls[-1] == (f"NetworkDriver.{verb}", {"NetworkID": "n1", "EndpointID": "e1"})
    run(d.delete_network("n1"))
    assert c.calls[-1] == ("NetworkDriver.DeleteNetwork", {"NetworkID": "n1"})


def test_driver_errors() -> None:
    p, _ = _plugin({"NetworkDriver.GetCapabilities": {"Scope": "cluster"},
                    "NetworkDriver.CreateNetwork": {"Err": "no way"},
                    "NetworkDriver.Join": {"Gateway": "nope"},
                    "NetworkDriver.ProgramExternalConnectivity":
                        PluginCallError("NetworkDriver.ProgramExternalConnectivity: 404", 404),
                    "NetworkDriver.RevokeExternalConnectivity":
                        PluginCallError("NetworkDriver.RevokeExternalConnectivity: boom", 500)})
    d = RemoteDriver(p)
    with pytest.raises(SystemError_, match="invalid capability: expecting 'local' or "
                                           "'global', got cluster"):
        run(d.capabilities())
    with pytest.raises(PluginCallError, match="^remote: no way$"):
        run(d.create_network("n", {}, [], []))
    with pytest.raises(PluginCallError, match='unable to parse Gateway "nope"'):
        run(d.join("n", "e", "/x", {}))
    run(d.program_external_connectivity("n", "e", {}))    # 404: optional, not an error
    with pytest.raises(PluginCallError, match="boom"):
        run(d.revoke_external_connectivity("n", "e"))


def test_ipam_calls_and_answers() -> None:
    p, c = _plugin({
        "IpamDriver.GetCapabilities": PluginCallError("IpamDriver.GetCapabilities: 404", 404),
        "IpamDriver.GetDefaultAddressSpaces": {"LocalDefaultAddressSpace": "l",
                                               "GlobalDefaultAddressSpace": "g"},
        "IpamDriver.RequestPool": {"PoolID": "P1", "Pool": "10.9.0.0/16", "Data": {}},
        "IpamDriver.RequestAddress": {"Address": "10.9.0.1/16"},
    })
    ipam = RemoteIpam(p)
    assert run(ipam.capabilities()).requires_mac is False      # no capabilities: none
    assert run(ipam.default_address_spaces()) == ("l", "g")
    g = run(ipam.request_pool("l", "", "", {"o": "1"}, False))
    assert c.calls[-1] == ("IpamDriver.RequestPool", {"AddressSpace": "l", "Pool": "",
                                                      "SubPool": "", "Options": {"o": "1"},
                                                      "V6": False})
    assert (g.pool_id, str(g.pool)) == ("P1", "10.9.0.0/16")
    a = run(ipam.request_address("P1", "", {"RequestAddressType": "x"}))
    assert str(a) == "10.9.0.1/16"
    with pytest.raises(PluginCallError, match="not an IPv6 pool"):
        run(ipam.request_pool("l", "", "", {}, True))
    c.answers["IpamDriver.RequestAddress"] = {"Address": ""}
    with pytest.raises(PluginCallError, match="no address returned"):
        run(ipam.request_address("P1"))
    run(ipam.release_address("P1", "10.9.0.1"))
    run(ipam.release_pool("P1"))
    assert c.calls[-2:] == [("IpamDriver.ReleaseAddress", {"PoolID": "P1",
                                                            "Address": "10.9.0.1"}),
                            ("IpamDriver.ReleasePool", {"PoolID": "P1"})]


def test_pools_from_an_ipam_plugin_and_their_rollback() -> None:
    p, c = _plugin({
        "IpamDriver.GetDefaultAddressSpaces": {"LocalDefaultAddressSpace": "l",
                                               "GlobalDefaultAddressSpace": "g"},
        "IpamDriver.RequestPool": {"PoolID": "P1", "Pool": "10.9.0.0/24",
                                   "Data": {"com.docker.network.gateway": "10.9.0.254/24"}},
        "IpamDriver.RequestAddress": {"Address": "10.9.0.9/24"},
    })
    ipam = RemoteIpam(p)
    req = NetworkRequest("n", aux_addresses={"a": "10.9.0.9"}, ipam_options={"o": "1"})
    grants = run(plugnets.request_pools(ipam, req, "global"))
    # the plugin's gateway is taken as it is; the auxiliary address is requested
    assert [m for m, _ in c.calls] == ["IpamDriver.GetDefaultAddressSpaces",
                                       "IpamDriver.RequestPool", "IpamDriver.RequestAddress"]
    assert c.calls[1][1]["AddressSpace"] == "g" and c.calls[2][1] == {
        "PoolID": "P1", "Address": "10.9.0.9", "Options": None}
    assert str(grants.v4.pool.gateway) == "10.9.0.254" and grants.v4.aux == {"a": "10.9.0.9"}
    assert grants.v4.data.to_json() == {"AddressSpace": "g",
                                        "AuxAddresses": {"a": "10.9.0.9/24"},
                                        "Gateway": "10.9.0.254/24", "Pool": "10.9.0.0/24"}
    # an auxiliary address outside the pool: Forbidden, the pool is given back
    c.calls.clear()
    bad = NetworkRequest("n", aux_addresses={"a": "10.8.0.9"})
    with pytest.raises(Forbidden, match=r"auxiliary address: \(a:10.8.0.9\) must belong to "
                                        "the master pool: 10.9.0.0/24"):
        run(plugnets.request_pools(ipam, bad, "local"))
    assert [m for m, _ in c.calls][-1] == "IpamDriver.ReleasePool"
    # the gateway refused: libnetwork's message, pool given back
    c.calls.clear()
    c.answers["IpamDriver.RequestAddress"] = PluginCallError("IpamDriver.RequestAddress: no")
    with pytest.raises(SystemError_, match=r"failed to allocate gateway \(10.9.0.1\): "
                                           "IpamDriver.RequestAddress: no"):
        run(plugnets.request_pools(ipam, NetworkRequest("n", gateway="10.9.0.1"), "local"))
    assert [m for m, _ in c.calls][-1] == "IpamDriver.ReleasePool"


def test_network_and_endpoint_options() -> None:
    req = NetworkRequest("n", internal=True, options={"foo": "bar"})
    assert plugnets.network_options(req) == {"com.docker.network.enable_ipv6": False,
                                             "com.docker.network.generic": {"foo": "bar"},
                                             "com.docker.network.internal": True}
    net = Network("i" * 64, "n", "plug", "t", subnet="10.1.0.0/24", gateway="10.1.0.1",
                  aux_addresses={"x": "10.1.0.5"}, subnet6="fd00::/64", gateway6="fd00::1")
    v4, v6 = plugnets.ipam_data(net, "local", None)
    assert [d.to_json() for d in v4] == [{"AddressSpace": "LocalDefault",
                                          "AuxAddresses": {"x": "10.1.0.5/24"},
                                          "Gateway": "10.1.0.1/24", "Pool": "10.1.0.0/24"}]
    assert [d.to_json() for d in v6] == [{"AddressSpace": "LocalDefault",
                                          "Gateway": "fd00::1/64", "Pool": "fd00::/64"}]
    ports = PortOptions((ExposedPort("tcp", 80), ExposedPort("udp", 53)),
                        (PortBinding("tcp", 80, "127.0.0.1", 8080, 8081),))
    opts = endpoint_options(EndpointSettings(DriverOpts={"k": "v"}), ports)
    assert opts == {
        "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80},
                                                     {"Proto": 17, "Port": 53}],
        "com.docker.network.portmap": [{"Proto": 6, "IP": "", "Port": 80,
                                        "HostIP": "127.0.0.1", "HostPort": 8080,
                                        "HostPortEnd": 8081}],
        "k": "v"}
    assert ipaddress.ip_address("10.1.0.5") in ipaddress.ip_network(net.subnet)


def test_what_create_endpoint_may_set() -> None:
    from pydockerd.network.model import Endpoint
    from pydockerd.network.plugeps import _apply, _ifname
    from pydockerd.network.remote import InterfaceOut
    ep = Endpoint("n", "e", "c", "10.0.0.2", 24, "", "02:42:0a:00:00:02", "")
    _apply(ep, InterfaceOut(address6="fd00::7/64"))     # left empty: the plugin's
    assert (ep.ip6, ep.prefix_len6) == ("fd00::7", 64)
    with pytest.raises(SystemError_, match=r"driver modified interface MAC address: endpoint "
                                           r"interface MAC address present "
                                           r"\(02:42:0a:00:00:02\)"):
        _apply(ep, InterfaceOut(mac="7a:00:00:00:00:01"))
    with pytest.raises(SystemError_, match="driver modified interface address"):
        _apply(ep, InterfaceOut(address="10.0.0.9/24"))
    bare = Endpoint("n", "e", "c", "10.0.0.3", 24, "", "", "")
    _apply(bare, InterfaceOut(mac="7A:00:00:00:00:01"))    # no MAC given: the plugin's
    assert bare.mac == "7A:00:00:00:00:01"
    assert _ifname("eth", {"eth0", "eth2"}) == "eth1" and _ifname("", set()) == "eth0"
    assert _ifname("pl", {"eth0"}) == "pl0"
