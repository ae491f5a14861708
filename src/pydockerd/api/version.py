"""API version negotiation, as dockerd's version middleware does it.

A path may start with `/v<version>` (moby's route pattern `/v{version:[0-9.]+}`);
without it the request is served at API_VERSION. The version is checked only
once the route is known (an unknown route is 404 at any version), and a version
outside [MIN_API_VERSION, API_VERSION] is a 400 with dockerd's message.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ..errors import InvalidParameter

ApiVersion = tuple[int, int]
API_VERSION: ApiVersion = (1, 50)
MIN_API_VERSION: ApiVersion = (1, 24)
_VERSION_PREFIX = re.compile(r"^/v([0-9.]+)(/.*)$")


def version_str(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def _compare(a: str, b: str) -> int:
    """Go's versions.compare: dot-separated parts read with Atoi (0 on error)."""
    pa, pb = a.split("."), b.split(".")
    for i in range(max(len(pa), len(pb))):
        x = int(pa[i]) if i < len(pa) and pa[i].isdigit() else 0
        y = int(pb[i]) if i < len(pb) and pb[i].isdigit() else 0
        if x != y:
            return -1 if x < y else 1
    return 0


def split_version(path: str) -> tuple[str | None, str]:
    """'/v1.41/containers/json' -> ('1.41', '/containers/json');
    a path without a version prefix -> (None, path)."""
    m = _VERSION_PREFIX.match(path)
    if not m:
        return None, path
    return m.group(1), m.group(2)


@lru_cache(maxsize=64)         # a client sends the same prefix on every request
def negotiate(text: str | None) -> tuple[int, int]:
    """The (major, minor) a request is served at; dockerd's 400 for a version
    this daemon does not serve."""
    if text is None:
        return API_VERSION
    if _compare(text, version_str(MIN_API_VERSION)) < 0:
        raise InvalidParameter(
            f"client version {text} is too old. Minimum supported API version is "
            f"{version_str(MIN_API_VERSION)}, please upgrade your client to a newer version")
    if _compare(text, version_str(API_VERSION)) > 0:
        raise InvalidParameter(
            f"client version {text} is too new. Maximum supported API version is "
            f"{version_str(API_VERSION)}")
    parts = [int(p) if p.isdigit() else 0 for p in text.split(".")] + [0, 0]
    return parts[0], parts[1]
