"""Docker's JSON for the registry routes that answer one document: POST /auth
(registry.AuthenticateOKBody), GET /distribution/{name}/json
(registry.DistributionInspect) and GET /images/search (registry.SearchResult).
Pull and push progress is api/wire_progress.py's."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..distribution.service import DistributionInfo, SearchResult


def login(status: str) -> dict[str, str]:
    return {"Status": status, "IdentityToken": ""}


def distribution_inspect(info: DistributionInfo) -> dict[str, Any]:
    d = info.descriptor
    return {"Descriptor": {"mediaType": d.media_type, "digest": d.digest, "size": d.size},
            "Platforms": [dict(p) for p in info.platforms]}


def search_results(results: list[SearchResult]) -> list[dict[str, Any]]:
    return [{"name": r.name, "description": r.description, "star_count": r.star_count,
             "is_official": r.is_official, "is_automated": r.is_automated}
            for r in results]


__all__ = ["login", "distribution_inspect", "search_results"]
