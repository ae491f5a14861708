"""`docker ps` selection: all/limit/filters, newest first, as dockerd does."""
from __future__ import annotations

import re
from typing import Callable

from ..errors import InvalidParameter
from ..util.ids import to_unix
from .model import Container
from ..util.filters import labels_match

_FILTERS = {"id", "name", "label", "exited", "status", "ancestor", "before", "since",
            "volume", "network", "health", "expose", "publish", "isolation", "is-task"}
_STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def select(containers: list[Container], all_: bool, limit: int, filters: dict[str, list[str]],
           get: Callable[[str], Container],
           image_matches: Callable[[str, Container], bool]) -> list[Container]:
    for key in filters:
        if key not in _FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
    for s in filters.get("status", []):
        if s not in _STATUSES:
            raise InvalidParameter(f"invalid filter 'status={s}'")
    for h in filters.get("health", []):
        if h not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidParameter(f"Unrecognised filter value for health: {h}")
    exited = []
    for e in filters.get("exited", []):
        try:
            exited.append(int(e))
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={e}'") from None
    expose = _port_set("expose", filters.get("expose", []))
    publish = _port_set("publish", filters.get("publish", []))
    before = [get(r) for r in filters.get("before", [])]
    since = [get(r) for r in filters.get("since", [])]
    ordered = sorted(containers, key=lambda c: (to_unix(c.created), c.id), reverse=True)
    # a status/exited filter, a limit (-n) or before/since imply --all
    all_ = all_ or bool(filters.get("status") or exited or (limit and limit > 0) or before
                        or since)
    out = []
    for c in ordered:
        if not all_ and not c.state.running:
            continue
        if not _match(c, filters, exited, image_matches):
            continue
        if expose and not expose & _port_keys(c.config.get("ExposedPorts") or {}):
            continue
        if publish and not publish & _published(c):
            continue
        if before and to_unix(c.created) >= min(to_unix(b.created) for b in before):
            continue
        if since and to_unix(c.created) <= max(to_unix(s.created) for s in since):
            continue
        out.append(c)
    if limit and limit > 0:
        out = out[:limit]
    return out


def _match(c: Container, f: dict[str, list[str]], exited: list[int],
           image_matches: Callable[[str, Container], bool]) -> bool:
    if f.get("id") and not any(c.id.startswith(i) for i in f["id"]):
        return False
    if f.get("name") and not any(_search(n.lstrip("/"), c.name) for n in f["name"]):
        return False
    if not labels_match(c.labels, f.get("label", [])):
        return False
    if exited and (c.state.status != "exited" or c.state.exit_code not in exited):
        return False
    if f.get("status") and c.state.status not in f["status"]:
        return False
    if f.get("ancestor") and not any(image_matches(a, c) for a in f["ancestor"]):
        return False
    if f.get("network"):
        mode = c.host_config.get("NetworkMode", "")
        ids = {e.network_id for e in c.endpoints}
        if not any(n == mode or any(i.startswith(n) for i in ids) for n in f["network"]):
            return False
    if f.get("health"):
        h = c.state.health.status if c.state.health else "none"
        if h not in f["health"]:
            return False
    if f.get("volume"):
        dests = set()
        for b in c.host_config.get("Binds") or []:
            parts = b.split(":")
            dests.update(parts[:2])
        for vm in c.volumes:
            dests.update((vm.name, vm.destination))
        if not any(v in dests for v in f["volume"]):
            return False
    if f.get("is-task") and "true" in f["is-task"]:
        return False
    return True


def _search(pattern: str, text: str) -> bool:
    """A `name` filter is a regular expression; an invalid one matches nothing (dockerd)."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _port_set(key: str, values: list[str]) -> set[tuple[int, str]]:
    """`expose`/`publish` values: <port>[/<proto>] or <start>-<end>[/<proto>] (moby portOp)."""
    out: set[tuple[int, str]] = set()
    for value in values:
        if ":" in value:
            raise InvalidParameter(f"filter for '{key}' should not contain ':': {value}")
        port, _, proto = value.partition("/")
        start, _, end = port.partition("-")
        try:
            lo, hi = int(start), int(end or start)
        except ValueError:
            raise InvalidParameter(f"error while looking up for {key} {port}: "
                                   f"invalid port range: {port}") from None
        if not 0 <= lo <= hi <= 65535:
            raise InvalidParameter(f"error while looking up for {key} {port}: "
                                   f"invalid port range: {port}")
        out.update((n, (proto or "tcp").lower()) for n in range(lo, hi + 1))
    return out


def _port_keys(ports: dict[str, object]) -> set[tuple[int, str]]:
    out = set()
    for key in ports:
        num, _, proto = key.partition("/")
        if num.isdigit():
            out.add((int(num), (proto or "tcp").lower()))
    return out


def _published(c: Container) -> set[tuple[int, str]]:
    """Ports with a binding: HostConfig.PortBindings, and -P's while running."""
    keys = _port_keys(c.host_config.get("PortBindings") or {})
    keys.update((m.container_port, m.proto) for m in c.ports)
    return keys
