"""Docker's --ulimit names and the rlimits of a container's process."""
from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

from pydockerd.errors import InvalidParameter

RLIM_INFINITY = 2**64 - 1  # as runc wants it (uint64)

# Names Docker accepts for --ulimit (RLIMIT_<NAME>).
ULIMIT_NAMES: tuple[str, ...] = (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
    "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)


@dataclass
class Ulimit:
    name: str
    soft: int
    hard: int


def rlimit_constant(oci_type: str) -> int | None:
    """The resource module's constant for an OCI rlimit type ("RLIMIT_NOFILE")."""
    const = getattr(resource, oci_type, None) if oci_type.startswith("RLIMIT_") else None
    return const if isinstance(const, int) else None


def read_host_rlimits() -> dict[str, int]:
    """Hard limits of this process, by Docker ulimit name (RLIM_INFINITY as 2**64-1)."""
    out: dict[str, int] = {}
    for name in ULIMIT_NAMES:
        const = getattr(resource, f"RLIMIT_{name.upper()}", None)
        if const is None:
            continue
        try:
            _soft, hard = resource.getrlimit(const)
        except (ValueError, OSError):
            continue
        out[name] = RLIM_INFINITY if hard == resource.RLIM_INFINITY or hard < 0 else hard
    return out


def build_rlimits(ulimits: list[Ulimit], defaults: list[Ulimit],
                  host_hard: dict[str, int]) -> list[dict[str, Any]]:
    """Container ulimits merged over daemon defaults, clamped to the daemon's own hard limits.

    runc cannot raise a hard limit above its own without CAP_SYS_RESOURCE
    (this host's RLIMIT_NOFILE hard limit is 20000), so asking for more would
    only make `runc create` fail with "setrlimit: operation not permitted".
    """
    merged: list[Ulimit] = list(ulimits)
    names = {u.name for u in ulimits}
    merged += [u for u in defaults if u.name not in names]
    out: list[dict[str, Any]] = []
    for u in merged:
        name = u.name.lower()
        if name not in ULIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {u.name}")
        soft = RLIM_INFINITY if u.soft < 0 else u.soft
        hard = RLIM_INFINITY if u.hard < 0 else u.hard
        if soft > hard:
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {u.soft} > {u.hard}"
            )
        ceiling = host_hard.get(name, RLIM_INFINITY)
        hard = min(hard, ceiling)
        soft = min(soft, hard)
        out.append({"type": f"RLIMIT_{name.upper()}", "hard": hard, "soft": soft})
    return out
