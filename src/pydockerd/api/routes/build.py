"""POST /build (the classic builder) and POST /build/prune."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

from ...containers.validate import validate_host_config
from ...errors import InvalidParameter
from ...models.build import BuildArgs, BuildLabels, BuildOptions, BuildResources
from ...models.host_config import HostConfig, Ulimit
from ..decode import convert, decode_query_json
from ..http import AnyResponse, Request, StreamResponse, json_response
from ..router import Route
from ..wire_progress import build_lines

if TYPE_CHECKING:
    from ...builder.service import BuildService


_INT = re.compile(r"[+-]?[0-9]+")          # strconv.ParseInt's syntax (no spaces, no _)


def _int_or_zero(req: Request, name: str) -> int:
    """httputils.Int64ValueOrZero: absent or not an int64 is 0."""
    raw = req.q(name) or ""
    if not _INT.fullmatch(raw):
        return 0
    value = int(raw, 10)
    return value if -(1 << 63) <= value < (1 << 63) else 0


def build_options(req: Request) -> BuildOptions:
    """moby's newImageBuildOptions: the first value of each parameter wins (FormValue),
    `t` and `extrahosts` are repeated parameters, the JSON ones are decoded."""
    if req.q("version") == "2":
        raise InvalidParameter("BuildKit is not supported by pydockerd: use "
                               "DOCKER_BUILDKIT=0 (the classic builder)")
    if req.q_list("securityopt"):
        raise InvalidParameter("security options are not supported on linux")
    resources = BuildResources(
        networkmode=req.q("networkmode") or "", extrahosts=req.q_list("extrahosts"),
        shmsize=req.q_int("shmsize") or 0,
        ulimits=decode_query_json(req.q("ulimits"), list[Ulimit], "ulimits") or [],
        cgroupparent=req.q("cgroupparent") or "",
        cpusetcpus=req.q("cpusetcpus") or "", cpusetmems=req.q("cpusetmems") or "",
        cpushares=_int_or_zero(req, "cpushares"), cpuquota=_int_or_zero(req, "cpuquota"),
        cpuperiod=_int_or_zero(req, "cpuperiod"), memory=_int_or_zero(req, "memory"),
        memswap=_int_or_zero(req, "memswap"))
    # what container create would refuse for the RUN containers is a 400 up front
    validate_host_config(convert(resources.host_config(), HostConfig))
    return BuildOptions(
        tags=[t for t in req.q_list("t") if t], dockerfile=req.q("dockerfile") or "Dockerfile",
        buildargs=decode_query_json(req.q("buildargs"), BuildArgs, "buildargs") or {},
        labels=decode_query_json(req.q("labels"), BuildLabels, "labels") or {},
        nocache=req.q_bool("nocache"), quiet=req.q_bool("q"), target=req.q("target") or "",
        remote=req.q("remote") or "",
        cachefrom=decode_query_json(req.q("cachefrom"), list[str], "cachefrom") or [],
        resources=resources)


def routes(builds: Callable[[], BuildService]) -> list[Route]:
    """`builds` builds the build service on first use (issue 10: idle memory)."""

    async def build(req: Request) -> AnyResponse:
        session = await builds().prepare(req.body.chunks(), build_options(req))
        return StreamResponse(build_lines(session.stream()), content_type="application/json")

    async def prune(req: Request) -> AnyResponse:
        deleted, reclaimed = builds().prune()
        return json_response({"CachesDeleted": deleted, "SpaceReclaimed": reclaimed})

    return [
        Route("POST", "/build", build),
        Route("POST", "/build/prune", prune),
    ]
