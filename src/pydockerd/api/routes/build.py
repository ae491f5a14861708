"""POST /build (the classic builder) and POST /build/prune."""
from __future__ import annotations

from ...builder.service import BuildOptions, BuildService
from ...errors import InvalidParameter
from ...models import BuildArgs, BuildLabels
from ..decode import decode_query_json
from ..http import AnyResponse, Request, StreamResponse, json_response
from ..router import Route
from ..wire_progress import build_lines


def routes(builds: BuildService) -> list[Route]:

    async def build(req: Request) -> AnyResponse:
        if req.q("remote"):
            raise InvalidParameter("building from a remote context is not supported by "
                                   "pydockerd: send the context as the request body")
        if req.q("version") == "2":
            raise InvalidParameter("BuildKit is not supported by pydockerd: use "
                                   "DOCKER_BUILDKIT=0 (the classic builder)")
        args = decode_query_json(req.q("buildargs"), BuildArgs, "buildargs") or {}
        labels = decode_query_json(req.q("labels"), BuildLabels, "labels") or {}
        decode_query_json(req.q("cachefrom"), list[str], "cachefrom")    # checked, unused yet
        opts = BuildOptions(
            tags=[t for t in req.q_list("t") if t], dockerfile=req.q("dockerfile") or "Dockerfile",
            buildargs=args, labels=labels,
            nocache=req.q_bool("nocache"), quiet=req.q_bool("q"), target=req.q("target") or "")
        session = await builds.prepare(req.body.chunks(), opts)
        return StreamResponse(build_lines(session.stream()), content_type="application/json")

    async def prune(req: Request) -> AnyResponse:
        deleted, reclaimed = builds.prune()
        return json_response({"CachesDeleted": deleted, "SpaceReclaimed": reclaimed})

    return [
        Route("POST", "/build", build),
        Route("POST", "/build/prune", prune),
    ]
