"""Registry routes: pull and import (POST /images/create), push, /auth,
/distribution/{name}/json, /images/search."""
from __future__ import annotations

from ...distribution.service import DistributionService
from ..router import Route
from .images import not_yet


def routes(dist: DistributionService) -> list[Route]:
    return [
        Route("POST", "/images/create", not_yet("pulling and importing images")),
        Route("POST", "/images/{name:path}/push", not_yet("pushing images")),
        Route("GET", "/images/search", not_yet("searching registries")),
        Route("POST", "/auth", not_yet("registry login")),
        Route("GET", "/distribution/{name:path}/json", not_yet("registry manifest inspect")),
    ]
