"""`docker ps` selection: filters, --all implications, order, limit (table-driven)."""
from __future__ import annotations

import pytest

from pydockerd.containers.listing import select
from pydockerd.containers.model import Container, State
from pydockerd.errors import InvalidParameter, NotFound
from pydockerd.network.portmap import PortMapping


def _c(n: int, name: str, status: str = "running", exit_code: int = 0,
       labels: dict[str, str] | None = None, exposed: tuple[str, ...] = (),
       bindings: tuple[str, ...] = (), published: tuple[int, ...] = ()) -> Container:
    c = Container(id=f"{n:x}" * 64, name=name, created=f"2026-01-01T00:00:{n:02d}Z",
                  image="busybox", image_id="sha256:" + "b" * 64,
                  config={"Labels": labels or {}, "ExposedPorts": {p: {} for p in exposed}},
                  host_config={"NetworkMode": "bridge",
                               "PortBindings": {p: [{"HostPort": ""}] for p in bindings}},
                  state=State(status=status, exit_code=exit_code))
    c.ports = [PortMapping("tcp", p, "0.0.0.0", 30000 + p, "10.0.0.2") for p in published]
    return c


WEB = _c(1, "web", labels={"tier": "front"}, exposed=("80/tcp", "443/tcp"),
         bindings=("80/tcp",))
DB = _c(2, "db", labels={"tier": "back", "x": "1"}, exposed=("5432/tcp",),
        published=(5432,))
DONE = _c(3, "done", status="exited", exit_code=3)
NEW = _c(4, "fresh", status="created")
ALL = [WEB, DB, DONE, NEW]


def _names(all_: bool = False, limit: int = -1, **filters: list[str]) -> list[str]:
    def get(ref: str) -> Container:
        for c in ALL:
            if c.name == ref or c.id.startswith(ref):
                return c
        raise NotFound(ref)
    f = {k.replace("_", "-"): v for k, v in filters.items()}
    return [c.name for c in select(ALL, all_, limit, f, get, lambda a, c: a == c.image)]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, ["db", "web"]),                                    # running only, newest first
    ({"all_": True}, ["fresh", "done", "db", "web"]),
    ({"limit": 2}, ["fresh", "done"]),                      # a limit implies --all
    ({"status": ["exited"]}, ["done"]),                     # a status implies --all
    ({"status": ["created", "running"]}, ["fresh", "db", "web"]),
    ({"exited": ["3"]}, ["done"]),
    ({"exited": ["0"]}, []),
    ({"name": ["^w"]}, ["web"]),
    ({"name": ["/db"]}, ["db"]),
    ({"name": ["("]}, []),                                  # bad regexp: no match, no 500
    ({"id": [DB.id[:5]]}, ["db"]),
    ({"label": ["tier"]}, ["db", "web"]),
    ({"label": ["tier=back"]}, ["db"]),
    ({"label": ["tier=back", "x=2"]}, []),
    ({"ancestor": ["busybox"]}, ["db", "web"]),
    ({"ancestor": ["alpine"]}, []),
    ({"expose": ["80"]}, ["web"]),
    ({"expose": ["5000-6000/tcp"]}, ["db"]),
    ({"expose": ["80/udp"]}, []),
    ({"publish": ["80"]}, ["web"]),                         # from HostConfig.PortBindings
    ({"publish": ["5432/tcp"]}, ["db"]),                    # published with -P
    ({"publish": ["443"]}, []),                             # exposed, not published
    ({"before": ["db"], "all_": True}, ["web"]),
    ({"since": ["db"]}, ["fresh", "done"]),
    ({"health": ["none"]}, ["db", "web"]),
    ({"is_task": ["true"]}, []),
])
def test_select(kwargs, expected):
    assert _names(**kwargs) == expected


@pytest.mark.parametrize("filters, message", [
    ({"bogus": ["1"]}, "invalid filter 'bogus'"),
    ({"status": ["sleeping"]}, "invalid filter 'status=sleeping'"),
    ({"exited": ["x"]}, "invalid filter 'exited=x'"),
    ({"health": ["meh"]}, "Unrecognised filter value for health: meh"),
    ({"expose": ["80:80"]}, "filter for 'expose' should not contain ':': 80:80"),
    ({"publish": ["x-y"]}, "error while looking up for publish x-y"),
    ({"publish": ["70000"]}, "error while looking up for publish 70000"),
])
def test_select_rejects(filters, message):
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(")):
        _names(**filters)
