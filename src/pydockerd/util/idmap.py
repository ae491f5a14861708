"""User namespace id mappings (`--userns-remap`): container ids <-> host ids.

An `IdMap` is the daemon's remapping: the ranges of /etc/subuid and /etc/subgid
laid end to end from container id 0, as moby's idtools.IdentityMapping. The
identity map (`IdMap()`, no ranges) is a daemon without remapping: every
translation returns its argument. Pure values: the host setup (user, ranges,
directories) is pydockerd/remap.py's.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameter

# (container id, host id, size) as the OCI spec's LinuxIDMapping
Range = tuple[int, int, int]
OVERFLOW_ID = 65534          # /proc/sys/kernel/overflowuid: an unmapped id


def ranges_from_subids(subids: list[tuple[int, int]]) -> tuple[Range, ...]:
    """/etc/subuid ranges (start, length), in file order, from container id 0."""
    out: list[Range] = []
    cid = 0
    for start, length in subids:
        out.append((cid, start, length))
        cid += length
    return tuple(out)


def _to_host(ranges: tuple[Range, ...], cid: int) -> int:
    if not ranges:
        return cid
    for c, h, n in ranges:
        if c <= cid < c + n:
            return h + cid - c
    raise InvalidParameter(f"Container ID {cid} cannot be mapped to a host ID")


def _to_container(ranges: tuple[Range, ...], hid: int) -> int:
    if not ranges:
        return hid
    for c, h, n in ranges:
        if h <= hid < h + n:
            return c + hid - h
    raise InvalidParameter(f"Host ID {hid} cannot be mapped to a container ID")


@dataclass(frozen=True)
class IdMap:
    uids: tuple[Range, ...] = ()
    gids: tuple[Range, ...] = ()

    @property
    def remapped(self) -> bool:
        return bool(self.uids)

    def root(self) -> tuple[int, int]:
        """The host uid and gid of the container's root."""
        return self.uid_to_host(0), self.gid_to_host(0)

    def uid_to_host(self, uid: int) -> int:
        return _to_host(self.uids, uid)

    def gid_to_host(self, gid: int) -> int:
        return _to_host(self.gids, gid)

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        return _to_host(self.uids, uid), _to_host(self.gids, gid)

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """Host ids as the container sees them; an id outside the ranges is the
        kernel's overflow id, as the container sees it (moby's ToContainer fails
        there; a file a host tool left in a volume must not abort a copy)."""
        try:
            u = _to_container(self.uids, uid)
        except InvalidParameter:
            u = OVERFLOW_ID
        try:
            g = _to_container(self.gids, gid)
        except InvalidParameter:
            g = OVERFLOW_ID
        return u, g

    def oci(self) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
        """linux.uidMappings and linux.gidMappings of the OCI spec."""
        def conv(rs: tuple[Range, ...]) -> list[dict[str, int]]:
            return [{"containerID": c, "hostID": h, "size": n} for c, h, n in rs]
        return conv(self.uids), conv(self.gids)

    def proc_map(self, gids: bool = False) -> str:
        """The text for /proc/<pid>/uid_map (gid_map)."""
        return "".join(f"{c} {h} {n}\n" for c, h, n in (self.gids if gids else self.uids))


IDENTITY = IdMap()
