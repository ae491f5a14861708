"""`--volumes-from <container>[:ro|:rw]` (HostConfig.VolumesFrom), as dockerd's
registerMountPoints.

At create, every volume and bind mount of each source container (running or not,
its own and what it got from others, so chains pass them on) is copied into the new
container, read-only when the source's was or `:ro` is asked; a later source wins a
destination, and the container's own -v/--mount/--tmpfs win over all of them. The
copies are recorded on the container (`volumes`, `inherited_binds`): removing or
changing the source later changes nothing. A shared anonymous volume is one volume
referenced by both containers: `rm -v` of one keeps it while the other exists.
"""
from __future__ import annotations

import posixpath
from typing import Any, Callable

from ..errors import InvalidParameter, NotFound
from .model import BindMount, Container, VolumeMount
from .mountspec import parse_bind

_MODE_GROUPS = ({"rw", "ro"}, {"z", "Z"})


def parse_volumes_from(spec: str) -> tuple[str, bool]:
    """`name[:mode]` -> (container reference, read-write allowed)."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, sep, mode = spec.partition(":")
    if not sep:
        return ref, True
    opts = mode.split(",")
    if any(not any(o in g for g in _MODE_GROUPS) for o in opts) \
            or any(sum(o in g for o in opts) > 1 for g in _MODE_GROUPS):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, "ro" not in opts


def own_binds(c: Container) -> list[BindMount]:
    """The container's bind mounts: -v /src:/dst, --mount type=bind, and inherited ones."""
    out = []
    for b in c.host_config.get("Binds") or []:
        m = parse_bind(b)
        if m.type == "bind":
            prop = next((o for o in m.options if o.endswith(("private", "slave", "shared"))),
                        "rprivate")
            out.append(BindMount(m.source, m.destination, "ro" not in m.options, prop))
    for m in c.host_config.get("Mounts") or []:
        if m.get("Type") == "bind":
            prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
            out.append(BindMount(m.get("Source") or "", posixpath.normpath(m.get("Target") or
                                                                           "/"),
                                 not m.get("ReadOnly"), prop))
    return out + list(c.inherited_binds)


def user_destinations(hc: dict[str, Any]) -> set[str]:
    """Destinations the container mounts itself (they win over --volumes-from)."""
    out = {parse_bind(b).destination for b in hc.get("Binds") or []}
    out.update(posixpath.normpath(m.get("Target") or "/") for m in hc.get("Mounts") or [])
    out.update(posixpath.normpath(d) for d in hc.get("Tmpfs") or {})
    return out


def inherit(hc: dict[str, Any],
            get: Callable[[str], Container]) -> tuple[list[VolumeMount], list[BindMount]]:
    """The volumes and binds HostConfig.VolumesFrom brings."""
    by_dest: dict[str, VolumeMount | BindMount] = {}
    for spec in hc.get("VolumesFrom") or []:
        ref, rw = parse_volumes_from(spec)
        try:
            src = get(ref)
        except NotFound as e:           # a 400 in dockerd (a 404 would make the CLI pull)
            raise InvalidParameter(e.message) from None
        for b in own_binds(src):
            by_dest[b.destination] = BindMount(b.source, b.destination, b.rw and rw,
                                               b.propagation)
        for v in src.volumes:
            by_dest[v.destination] = VolumeMount(
                name=v.name, destination=v.destination, source=v.source, driver=v.driver,
                mode="", rw=v.rw and rw, propagation=v.propagation, copy_data=False,
                anonymous=v.anonymous)
    mine = user_destinations(hc)
    volumes = [m for d, m in by_dest.items() if isinstance(m, VolumeMount) and d not in mine]
    binds = [m for d, m in by_dest.items() if isinstance(m, BindMount) and d not in mine]
    return volumes, binds
