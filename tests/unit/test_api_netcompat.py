"""api/netcompat.py: the container-wide Config.MacAddress moved to the main network's
endpoint, by API version, as moby's handleMACAddressBC (pure logic)."""
from __future__ import annotations

from typing import Any

import pytest

from pydockerd.api.decode import convert
from pydockerd.api.netcompat import DEPRECATED, migrate_mac_address
from pydockerd.errors import InvalidParameter
from pydockerd.models import ContainerCreateRequest, to_doc

MAC, OTHER = "02:42:ac:11:00:99", "02:42:ac:11:00:98"


def _run(body: dict[str, Any], version: tuple[int, int]) -> tuple[dict[str, Any], list[str]]:
    create, warnings = migrate_mac_address(convert(body, ContainerCreateRequest), version)
    return to_doc(create) or {}, warnings


CASES = [
    # (API version, request, expected MacAddress, expected EndpointsConfig, warned)
    ((1, 41), {"MacAddress": MAC}, MAC, {"bridge": {"MacAddress": MAC}}, False),
    ((1, 41), {"MacAddress": MAC, "HostConfig": {"NetworkMode": "net1"}}, MAC,
     {"net1": {"MacAddress": MAC}}, False),
    ((1, 41), {"MacAddress": MAC, "NetworkingConfig": {"EndpointsConfig": {"n": {
        "Aliases": ["a"]}}}}, MAC, {"n": {"Aliases": ["a"], "MacAddress": MAC}}, False),
    # before 1.44 an endpoint's own MacAddress did not exist: dropped
    ((1, 43), {"NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": MAC}}}}, None,
     {"n": {}}, False),
    ((1, 44), {"NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": MAC}}}}, None,
     {"n": {"MacAddress": MAC}}, False),
    ((1, 50), {"MacAddress": MAC}, None, {"bridge": {"MacAddress": MAC}}, True),
    ((1, 50), {"MacAddress": MAC, "HostConfig": {"NetworkMode": "n"},
               "NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": MAC}}}},
     None, {"n": {"MacAddress": MAC}}, True),
    ((1, 50), {"MacAddress": MAC, "HostConfig": {"NetworkMode": "host"}}, None, None, True),
]


@pytest.mark.parametrize("version,body,mac,eps,warned", CASES)
def test_mac_address_migration(version: tuple[int, int], body: dict[str, Any], mac: str | None,
                               eps: dict[str, Any] | None, warned: bool) -> None:
    doc, warnings = _run(body, version)
    assert doc.get("MacAddress") == mac
    assert (doc.get("NetworkingConfig") or {}).get("EndpointsConfig") == eps
    assert warnings == ([DEPRECATED] if warned else [])


@pytest.mark.parametrize("version,body,message", [
    ((1, 41), {"MacAddress": MAC, "HostConfig": {"NetworkMode": "host"}},
     "conflicting options: mac-address and the network mode"),
    ((1, 50), {"MacAddress": MAC, "HostConfig": {"NetworkMode": "n"},
               "NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": OTHER}}}},
     "the container-wide MAC address must match the endpoint-specific MAC address for the "
     "main network, or be left empty"),
    ((1, 50), {"MacAddress": MAC, "HostConfig": {"NetworkMode": "n"},
               "NetworkingConfig": {"EndpointsConfig": {"m": {}}}},
     "unable to migrate container-wide MAC address to a specific network: HostConfig."
     "NetworkMode must match the identity of a network in NetworkSettings.Networks"),
])
def test_mac_address_conflicts(version: tuple[int, int], body: dict[str, Any],
                               message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        _run(body, version)
    assert e.value.message == message
