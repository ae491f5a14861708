"""Registry routes: pull and import (POST /images/create), push, /auth,
/distribution/{name}/json, /images/search."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ...distribution.auth import AuthConfig
from ...models import AuthConfig as AuthConfigModel, to_doc
from ..decode import decode_body
from ..http import AnyResponse, Request, StreamResponse, json_response
from ..router import Route
from ..wire_distribution import distribution_inspect, login as login_status, search_results
from ..wire_progress import lines

if TYPE_CHECKING:
    from ...distribution.service import DistributionService


def _auth(req: Request) -> AuthConfig:
    return AuthConfig.from_header(req.headers.get("x-registry-auth"))


def routes(dist: Callable[[], DistributionService]) -> list[Route]:
    """dist: the service, built (and its modules imported) by the first call."""

    async def create(req: Request) -> AnyResponse:
        stream = await dist().create(
            req.q("fromImage"), req.q("fromSrc"), req.q("tag"), req.q("platform"), _auth(req),
            req.body.chunks(), req.q("repo"), req.q_list("changes"), req.q("message") or "")
        return StreamResponse(lines(stream))

    async def push(req: Request) -> AnyResponse:
        return StreamResponse(lines(await dist().push(req.params["name"], req.q("tag"),
                                                    _auth(req))))

    async def search(req: Request) -> AnyResponse:
        return json_response(search_results(await dist().search(
            req.q("term") or "", req.q_int("limit"), req.filters(), _auth(req))))

    async def login(req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), AuthConfigModel)
        return json_response(login_status(await dist().login(AuthConfig.from_json(to_doc(body)))))

    async def inspect(req: Request) -> AnyResponse:
        return json_response(distribution_inspect(await dist().inspect(req.params["name"],
                                                                     _auth(req))))

    return [
        Route("POST", "/images/create", create),
        Route("POST", "/images/{name:path}/push", push),
        Route("GET", "/images/search", search),
        Route("POST", "/auth", login),
        Route("GET", "/distribution/{name:path}/json", inspect),
    ]
