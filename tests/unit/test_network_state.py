"""NetworkState and the endpoint bookkeeping, without root: lookup, leases, DNS answers."""
from __future__ import annotations

import dataclasses
import ipaddress
import sys
from pathlib import Path

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.errors import InvalidParameter, NotFound
from pydockerd.events import EventBus
from pydockerd.network import endpoints
from pydockerd.network.ipam import Pool
from pydockerd.network.model import Network
from pydockerd.network.state import K_ENDPOINT, K_LEASE, NetworkOptions, NetworkState
from pydockerd.store import Store

BRIDGE_ID = "b" * 64
USER_ID = "a1" + "0" * 62
OTHER_ID = "a2" + "0" * 62


@pytest.fixture
def state(tmp_path: Path) -> NetworkState:
    opts = NetworkOptions("pdunit0", None, None, 1500, False, False, True, True, "0.0.0.0")
    names = {"c1" * 32: "web", "c2" * 32: "db", "c3" * 32: "cache"}

    class Names:
        def name_of(self, cid: str) -> str | None:
            return names.get(cid)

        def endpoint_links(self, cid: str, network: str) -> dict[str, str]:
            return {}

        def dns_servers(self, cid: str) -> list[str]:
            return ["10.0.0.53"] if cid == "c1" * 32 else []
    st = NetworkState(Store(str(tmp_path / "db.sqlite")), EventBus(), str(tmp_path / "netns"),
                      opts, Names())
    for nid, name, subnet in ((BRIDGE_ID, "bridge", "10.198.0.0/24"),
                              (USER_ID, "front", "10.198.1.0/24"),
                              (OTHER_ID, "back", "10.198.2.0/24")):
        net = ipaddress.IPv4Network(subnet)
        st.networks[nid] = Network(nid, name, "bridge", "2026-01-01T00:00:00Z",
                                   subnet=subnet, gateway=str(net[1]))
        st.pools[nid] = Pool(net, net[1])
    return st


def test_get_by_name_id_and_prefix(state: NetworkState) -> None:
    assert state.get("front").id == USER_ID
    assert state.get(USER_ID).name == "front"
    assert state.get("a1").name == "front"
    with pytest.raises(InvalidParameter, match="ambiguous"):
        state.get("a")
    with pytest.raises(NotFound, match="network nope not found"):
        state.get("nope")
    with pytest.raises(NotFound):
        state.get("")


def test_reserve_records_lease_and_endpoint(state: NetworkState) -> None:
    net = state.get("front")
    ep1 = endpoints.reserve(state, "c1" * 32, net, "/ns/1", None)
    ep2 = endpoints.reserve(state, "c2" * 32, net, "/ns/2", None, aliases=["database"])
    assert (ep1.ip, ep2.ip) == ("10.198.1.2", "10.198.1.3")
    assert ep1.gateway == "10.198.1.1" and ep1.prefix_len == 24
    assert state.attached(USER_ID) == [ep1, ep2]
    assert state.endpoints("c2" * 32) == [ep2]
    assert set(state.store.all(K_ENDPOINT)) == {ep1.key, ep2.key}
    assert len(state.store.all(K_LEASE)) == 2
    state.release_lease(USER_ID, ep1.ip)
    assert ep1.ip not in {d["ip"] for d in state.store.all(K_LEASE).values()}
    ep3 = endpoints.reserve(state, "c3" * 32, net, "/ns/3", None)
    assert ep3.ip == "10.198.1.2"                  # the released address is free again


def test_dns_answers_only_user_network_peers(state: NetworkState) -> None:
    front, back, bridge = state.get("front"), state.get("back"), state.get("bridge")
    web = endpoints.reserve(state, "c1" * 32, front, "/ns/1", None)
    db = endpoints.reserve(state, "c2" * 32, front, "/ns/2", None, aliases=["database"])
    endpoints.reserve(state, "c3" * 32, back, "/ns/3", None)
    endpoints.reserve(state, "c3" * 32, bridge, "/ns/3", None)
    web_id = "c1" * 32
    assert state.dns_lookup(web_id, "db.") == [db.ip]
    assert state.dns_lookup(web_id, "DATABASE") == [db.ip]
    assert state.dns_lookup(web_id, "db.front") == [db.ip]
    assert state.dns_lookup(web_id, ("c2" * 32)[:12]) == [db.ip]
    assert state.dns_lookup(web_id, "cache") is None          # on another network
    assert state.dns_lookup("c3" * 32, "web") is None
    assert state.dns_reverse("c2" * 32, web.ip) == ["web.front"]
    assert state.dns_names(db) == ["db", ("c2" * 32)[:12], "database"]


def test_name_of_falls_back_to_short_id(state: NetworkState) -> None:
    assert state.name_of("c1" * 32) == "web"
    assert state.name_of("f" * 64) == "f" * 12                # unknown container


def test_netns_path_refuses_path_tricks(state: NetworkState) -> None:
    assert state.netns_path("abc").endswith("/netns/abc")
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(InvalidParameter):
            state.netns_path(bad)


def test_embedded_dns_forwards_to_the_containers_dns_then_the_daemons(
        state: NetworkState) -> None:
    assert state.dns_upstreams("c1" * 32) == ["10.0.0.53"]         # its own --dns
    state.opts = dataclasses.replace(state.opts, dns=("10.0.0.54",))
    assert state.dns_upstreams("c2" * 32) == ["10.0.0.54"]         # the daemon's --dns
    assert state.dns_upstreams("c1" * 32) == ["10.0.0.53"]
