"""A request target -> its route: the path percent-decoded, the /vX.Y prefix split
off, the route looked up. Cached per method and target for routes without path
parameters (a client repeats `GET /v1.50/containers/json?all=1`) and a target of
at most _CACHED_URL bytes (so the cache holds at most 256 KiB of targets)."""
from __future__ import annotations

from typing import NamedTuple

from .httpwire import split_target
from .router import Route, Router
from .version import split_version

_CACHE_SIZE = 256          # entries; the cache starts over when full
_CACHED_URL = 1024         # bytes: a longer target (a large filter) is looked up each time


class Target(NamedTuple):
    path: str                      # without the /vX.Y prefix
    query: str                     # raw query string
    version: str | None            # the /vX.Y prefix's version, None without one
    route: Route
    params: dict[str, str]         # path parameters (empty for cached targets)


class Targets:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._cache: dict[tuple[str, bytes], Target] = {}

    def get(self, method: str, url: bytes) -> Target:
        """The target's route; BadRequest (unreadable target) or NotFound."""
        key = (method, url)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        path, query = split_target(url)
        version, path = split_version(path)
        route, params = self.router.lookup(method, path)
        target = Target(path, query, version, route, params)
        if not params and len(url) <= _CACHED_URL:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = target
        return target
