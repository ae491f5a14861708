"""Pure parts of legacy links and --volumes-from: parsing and dockerd's link
environment (the expected lists are what dockerd 20.10 gave for the same ports)."""
from __future__ import annotations

import pytest

from pydockerd.containers.links import env_vars, parse_link
from pydockerd.containers.volumesfrom import parse_volumes_from
from pydockerd.errors import InvalidParameter

# `docker run --link tt:my-db` to a container with -e X=1 and
# --expose 5000 --expose 5001 --expose 7000/tcp --expose 7001/udp --expose 7001/tcp
# --expose 53/udp --expose 10-12/udp (dockerd 20.10, as the process saw it)
DOCKERD_ENV = [
    'MY_DB_PORT=udp://10.0.0.2:10',
    'MY_DB_PORT_10_UDP_START=udp://10.0.0.2:10',
    'MY_DB_PORT_10_UDP_ADDR=10.0.0.2',
    'MY_DB_PORT_10_UDP_PROTO=udp',
    'MY_DB_PORT_10_UDP_PORT_START=10',
    'MY_DB_PORT_10_UDP_END=udp://10.0.0.2:12',
    'MY_DB_PORT_10_UDP_PORT_END=12',
    'MY_DB_PORT_7000_TCP_START=tcp://10.0.0.2:7000',
    'MY_DB_PORT_7000_TCP_ADDR=10.0.0.2',
    'MY_DB_PORT_7000_TCP_PROTO=tcp',
    'MY_DB_PORT_7000_TCP_PORT_START=7000',
    'MY_DB_PORT_7000_UDP_END=udp://10.0.0.2:7001',
    'MY_DB_PORT_7000_UDP_PORT_END=7001',
    'MY_DB_PORT_10_UDP=udp://10.0.0.2:10',
    'MY_DB_PORT_10_UDP_PORT=10',
    'MY_DB_PORT_11_UDP=udp://10.0.0.2:11',
    'MY_DB_PORT_11_UDP_ADDR=10.0.0.2',
    'MY_DB_PORT_11_UDP_PORT=11',
    'MY_DB_PORT_11_UDP_PROTO=udp',
    'MY_DB_PORT_12_UDP=udp://10.0.0.2:12',
    'MY_DB_PORT_12_UDP_ADDR=10.0.0.2',
    'MY_DB_PORT_12_UDP_PORT=12',
    'MY_DB_PORT_12_UDP_PROTO=udp',
    'MY_DB_PORT_53_UDP=udp://10.0.0.2:53',
    'MY_DB_PORT_53_UDP_ADDR=10.0.0.2',
    'MY_DB_PORT_53_UDP_PORT=53',
    'MY_DB_PORT_53_UDP_PROTO=udp',
    'MY_DB_PORT_5000_TCP=tcp://10.0.0.2:5000',
    'MY_DB_PORT_5000_TCP_ADDR=10.0.0.2',
    'MY_DB_PORT_5000_TCP_PORT=5000',
    'MY_DB_PORT_5000_TCP_PROTO=tcp',
    'MY_DB_PORT_5001_TCP=tcp://10.0.0.2:5001',
    'MY_DB_PORT_5001_TCP_ADDR=10.0.0.2',
    'MY_DB_PORT_5001_TCP_PORT=5001',
    'MY_DB_PORT_5001_TCP_PROTO=tcp',
    'MY_DB_PORT_7000_TCP=tcp://10.0.0.2:7000',
    'MY_DB_PORT_7000_TCP_PORT=7000',
    'MY_DB_PORT_7001_TCP=tcp://10.0.0.2:7001',
    'MY_DB_PORT_7001_TCP_ADDR=10.0.0.2',
    'MY_DB_PORT_7001_TCP_PORT=7001',
    'MY_DB_PORT_7001_TCP_PROTO=tcp',
    'MY_DB_PORT_7001_UDP=udp://10.0.0.2:7001',
    'MY_DB_PORT_7001_UDP_ADDR=10.0.0.2',
    'MY_DB_PORT_7001_UDP_PORT=7001',
    'MY_DB_PORT_7001_UDP_PROTO=udp',
    'MY_DB_NAME=/par/my-db',
    'MY_DB_ENV_X=1',
]


def _dedup(env: list[str]) -> list[str]:
    seen: set[str] = set()
    return [e for e in env if not (e.split("=", 1)[0] in seen or seen.add(e.split("=", 1)[0]))]


def test_env_vars_as_dockerd():
    exposed = ["5000/tcp", "5001/tcp", "7000/tcp", "7001/udp", "7001/tcp", "53/udp",
               "10/udp", "11/udp", "12/udp"]
    got = env_vars("/par/my-db", "10.0.0.2", ["PATH=/bin", "HOME=/root", "X=1", "NOVALUE"],
                   exposed)
    assert _dedup(got) == DOCKERD_ENV


def test_env_vars_without_ports():
    assert env_vars("/p/db", "10.0.0.3", ["A=b=c"], []) == ["DB_NAME=/p/db", "DB_ENV_A=b=c"]


@pytest.mark.parametrize("value, expected", [
    ("tgt", ("tgt", "tgt")), ("tgt:db", ("tgt", "db")), ("/tgt:/par/db", ("tgt", "db")),
    ("/tgt", ("tgt", "tgt")),
])
def test_parse_link(value, expected):
    assert parse_link(value) == expected


@pytest.mark.parametrize("value, message", [
    ("", "empty string specified for links"), ("a:b:c", "bad format for links: a:b:c"),
    ("tgt:", "bad format for links: tgt:"),
])
def test_parse_link_errors(value, message):
    with pytest.raises(InvalidParameter, match=message):
        parse_link(value)


@pytest.mark.parametrize("value, expected", [
    ("src", ("src", True)), ("src:rw", ("src", True)), ("src:ro", ("src", False)),
    ("src:z", ("src", True)), ("src:ro,Z", ("src", False)),
])
def test_parse_volumes_from(value, expected):
    assert parse_volumes_from(value) == expected


@pytest.mark.parametrize("value, message", [
    ("", "volumes-from specification cannot be an empty string"),
    ("src:xx", "invalid mode: xx"), ("src:nocopy", "invalid mode: nocopy"),
    ("src:rshared", "invalid mode: rshared"), ("src:ro,rw", "invalid mode: ro,rw"),
])
def test_parse_volumes_from_errors(value, message):
    with pytest.raises(InvalidParameter, match=message):
        parse_volumes_from(value)
