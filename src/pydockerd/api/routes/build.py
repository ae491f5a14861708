"""POST /build (the classic builder) and POST /build/prune."""
from __future__ import annotations

import json
from typing import Any

from ...builder.service import BuildOptions, BuildService
from ...errors import InvalidParameter
from ..http import AnyResponse, Request, StreamResponse, json_response
from ..router import Route


def _json_map(req: Request, name: str) -> dict[str, Any]:
    raw = req.q(name)
    if not raw:
        return {}
    try:
        v = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON in {name}: {e}") from None
    if not isinstance(v, dict):
        raise InvalidParameter(f"invalid {name}: expected a JSON object")
    return v


def routes(builds: BuildService) -> list[Route]:

    async def build(req: Request) -> AnyResponse:
        if req.q("remote"):
            raise InvalidParameter("building from a remote context is not supported by "
                                   "pydockerd: send the context as the request body")
        if req.q("version") == "2":
            raise InvalidParameter("BuildKit is not supported by pydockerd: use "
                                   "DOCKER_BUILDKIT=0 (the classic builder)")
        args = {str(k): (None if v is None else str(v))
                for k, v in _json_map(req, "buildargs").items()}
        opts = BuildOptions(
            tags=[t for t in req.q_list("t") if t], dockerfile=req.q("dockerfile") or "Dockerfile",
            buildargs=args, labels={str(k): str(v) for k, v in _json_map(req, "labels").items()},
            nocache=req.q_bool("nocache"), quiet=req.q_bool("q"), target=req.q("target") or "")
        session = await builds.prepare(req.body.chunks(), opts)
        return StreamResponse(session.stream(), content_type="application/json")

    async def prune(req: Request) -> AnyResponse:
        deleted, reclaimed = builds.prune()
        return json_response({"CachesDeleted": deleted, "SpaceReclaimed": reclaimed})

    return [
        Route("POST", "/build", build),
        Route("POST", "/build/prune", prune),
    ]
