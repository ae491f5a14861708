"""Legacy links (`--link name:alias`), as dockerd's daemon/links.go, daemon/links/links.go
and container.CreateDaemonEnvironment.

On the default bridge a link is a record on the linking container (the parent):
`Link(alias, child id)`, named `/<parent>/<alias>`. At start every child must be
running and on the default bridge; the parent's /etc/hosts gets
`<child ip>\t<alias> <child hostname> [<child name>]` and its environment
`<ALIAS>_PORT...`, `<ALIAS>_NAME`, `<ALIAS>_ENV_<var>`. On user-defined networks a
link is only a DNS alias of the linking container's endpoint (EndpointSettings.Links),
answered by the embedded DNS for that container alone.
"""
from __future__ import annotations

import posixpath
from typing import Callable

from ..errors import InvalidParameter, NotFound, SystemError_
from .model import Container, Link

_HOST_CONFLICT = ("conflicting options: host type networking can't be used with links. "
                  "This would result in undefined behavior")
_CONTAINER_CONFLICT = ("conflicting options: container type network can't be used with "
                       "links. This would result in undefined behavior")
_NOT_USER_DEFINED = ("bridge", "default", "host", "none")

Get = Callable[[str], Container]


def _find(get: Get, cid: str) -> Container | None:
    try:
        return get(cid)
    except NotFound:
        return None


def parse_link(value: str) -> tuple[str, str]:
    """moby's opts.ParseLink: `name[:alias]` (or inspect's `/name:/parent/alias`)
    -> (name, alias)."""
    if not value:
        raise InvalidParameter("empty string specified for links")
    parts = value.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"bad format for links: {value}")
    if len(parts) == 1:
        name, alias = value, value
    elif parts[0].startswith("/"):
        name, alias = parts[0][1:], posixpath.basename(parts[1])
    else:
        name, alias = parts
    alias = alias.strip("/")
    if not alias or "/" in alias:
        # dockerd silently drops such a link (its name cannot be reserved)
        raise InvalidParameter(f"bad format for links: {value}")
    return name.lstrip("/"), alias


def is_user_defined(mode: str) -> bool:
    return mode not in _NOT_USER_DEFINED and not mode.startswith("container:")


def register(links: list[str], mode: str, get: Get) -> list[Link]:
    """HostConfig.Links at create -> the parent's link records (dockerd's registerLinks).
    On a user-defined network mode they are ignored (the endpoint's Links count there)."""
    if not links or is_user_defined(mode):
        return []
    if mode == "host":
        raise InvalidParameter(_HOST_CONFLICT)
    if mode.startswith("container:"):
        raise InvalidParameter(_CONTAINER_CONFLICT)
    out: list[Link] = []
    for value in links:
        name, alias = parse_link(value)
        child = _child(name, get)
        if any(link.alias == alias for link in out):
            continue                    # the first link of a name wins, as in dockerd
        out.append(Link(alias, child.id, child.name))
    return out


def _child(name: str, get: Get) -> Container:
    if not name:
        raise InvalidParameter('could not get container for : invalid name or ID supplied: ""')
    try:
        child = get(name)
        # a container sharing another's network namespace: link to that one
        while child.host_config["NetworkMode"].startswith("container:"):
            name = child.host_config["NetworkMode"].split(":", 1)[1]
            child = get(name)
    except NotFound as e:
        raise InvalidParameter(f"could not get container for {name}: {e.message}") from None
    if child.host_config["NetworkMode"] == "host":
        raise InvalidParameter(_HOST_CONFLICT)
    return child


def link_name(parent: Container, link: Link) -> str:
    return f"/{parent.name}/{link.alias}"


def _bridge_ip(c: Container) -> str:
    return next((e.ip for e in c.endpoints if e.network == "bridge"), "")


def _on_default_bridge(c: Container) -> bool:
    if c.state.running:
        return any(e.network == "bridge" for e in c.endpoints)
    eps = c.networking_config.get("EndpointsConfig")
    if eps is None:
        return c.host_config["NetworkMode"] in ("bridge", "default")
    return "bridge" in eps


def check_children(c: Container, get: Get) -> None:
    """Before a start on the default bridge: every child is linkable and running,
    with dockerd's errors."""
    for link in c.links:
        child = _find(get, link.child_id)
        name = "/" + (child.name if child is not None else link.child_name)
        if child is not None and not _on_default_bridge(child):
            raise SystemError_(f"Cannot link to {name}, as it does not belong to the "
                               "default network")
        if child is None or not child.state.running:
            raise SystemError_(f"Cannot link to a non running container: {name} AS "
                               f"{link_name(c, link)}")


def _live_children(c: Container, get: Get) -> list[tuple[Link, Container, str]]:
    """(link, child, child's bridge IP) of the links that work now; none unless the
    parent itself is on the default bridge."""
    if not _bridge_ip(c):
        return []
    out = []
    for link in c.links:
        child = _find(get, link.child_id)
        if child is not None and child.state.running and (ip := _bridge_ip(child)):
            out.append((link, child, ip))
    return out


def hosts_entries(c: Container, get: Get) -> list[str]:
    """The links' /etc/hosts lines, as ExtraHosts entries (`names:ip`), in link order."""
    out = []
    for link, child, ip in _live_children(c, get):
        names = [link.alias, child.config.get("Hostname") or child.short_id]
        if link.alias != child.name:
            names.append(child.name)
        out.append(f"{' '.join(names)}:{ip}")
    return out


def link_env(c: Container, get: Get) -> list[str]:
    """The links' environment variables (before the container's own Env)."""
    env: list[str] = []
    for link, child, ip in _live_children(c, get):
        env += env_vars(link_name(c, link), ip, list(child.config.get("Env") or []),
                        list(child.config.get("ExposedPorts") or {}))
    seen: set[str] = set()
    out = []
    for e in env:                       # a range repeats its first port's _ADDR/_PROTO
        key = e.split("=", 1)[0]
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _port_key(p: tuple[int, str]) -> tuple[int, int]:
    return (p[0], 0 if p[1] == "tcp" else 1)


def env_vars(name: str, child_ip: str, child_env: list[str], exposed: list[str]) -> list[str]:
    """dockerd 20.10's Link.ToEnv for one link named `name` (`/parent/alias`)."""
    alias = posixpath.basename(name).upper().replace("-", "_")
    ports: list[tuple[int, str]] = []
    for key in exposed:
        number, _, kind = key.partition("/")
        if number.isdigit():
            ports.append((int(number), (kind or "tcp").lower()))
    ports.sort(key=_port_key)
    env = []
    if ports:
        env.append(f"{alias}_PORT={ports[0][1]}://{child_ip}:{ports[0][0]}")
    i = 0
    while i < len(ports):               # first every range of 3+ consecutive ports ...
        j = _next_contiguous(ports, i)
        num, proto = ports[i]
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        if j > i + 1:
            end_num, end_proto = ports[j]
            env += [f"{prefix}_START={proto}://{child_ip}:{num}", f"{prefix}_ADDR={child_ip}",
                    f"{prefix}_PROTO={proto}", f"{prefix}_PORT_START={num}",
                    f"{alias}_PORT_{num}_{end_proto.upper()}_END="
                    f"{end_proto}://{child_ip}:{end_num}",
                    f"{alias}_PORT_{num}_{end_proto.upper()}_PORT_END={end_num}"]
        i = j + 1
    for pnum, pproto in ports:          # ... then every port
        pre = f"{alias}_PORT_{pnum}_{pproto.upper()}"
        env += [f"{pre}={pproto}://{child_ip}:{pnum}", f"{pre}_ADDR={child_ip}",
                f"{pre}_PORT={pnum}", f"{pre}_PROTO={pproto}"]
    env.append(f"{alias}_NAME={name}")
    for e in child_env:
        key, eq, value = e.partition("=")
        if eq and key not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{key}={value}")
    return env


def _next_contiguous(ports: list[tuple[int, str]], index: int) -> int:
    """The last index of the run of consecutive port numbers starting at `index`."""
    value = ports[index][0]
    for k in range(index + 1, len(ports)):
        if ports[k][0] > value + 1:
            return k - 1
        value += 1
    return len(ports) - 1


def endpoint_aliases(c: Container, network: str) -> dict[str, str]:
    """EndpointSettings.Links of the container on a user-defined network:
    {alias: target name}, for the embedded DNS."""
    settings = (c.networking_config.get("EndpointsConfig") or {}).get(network) or {}
    out: dict[str, str] = {}
    for value in settings.get("Links") or []:
        try:
            name, alias = parse_link(value)
        except InvalidParameter:
            continue
        out.setdefault(alias, name)
    return out


def names_by_child(containers: list[Container]) -> dict[str, list[str]]:
    """child id -> its link names (`/parent/alias`), for `docker ps` Names."""
    out: dict[str, list[str]] = {}
    for parent in containers:
        for link in parent.links:
            out.setdefault(link.child_id, []).append(link_name(parent, link))
    return out


def inspect_links(c: Container, get: Get) -> list[str] | None:
    """HostConfig.Links as dockerd's inspect shows it: `/child:/parent/alias`."""
    out = []
    for link in c.links:
        child = _find(get, link.child_id)
        out.append(f"/{child.name if child is not None else link.child_name}:"
                   f"{link_name(c, link)}")
    return out or None
