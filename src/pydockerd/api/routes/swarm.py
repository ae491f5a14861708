"""Swarm routes (/swarm, /nodes, /services, /tasks, /secrets, /configs)."""
from __future__ import annotations

from typing import NoReturn, Protocol

from ...errors import InvalidParameter
from ...models.swarm import SwarmJoinRequest
from ..decode import decode_body
from ..http import AnyResponse, Request, empty
from ..router import Route


class SwarmBackend(Protocol):
    def require_manager(self) -> NoReturn: ...
    async def leave(self, force: bool) -> None: ...
    def init(self) -> NoReturn: ...
    async def join(self, remote_addrs: list[str], token: str, availability: str,
                   advertise_addr: str, listen_addr: str, data_path_addr: str) -> None: ...


# (method, path) of every manager-only route, as moby's cluster router has them
_MANAGER_ROUTES = [
    ("GET", "/swarm"), ("POST", "/swarm/update"), ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"),
    ("GET", "/services"), ("GET", "/services/{id}"), ("POST", "/services/create"),
    ("POST", "/services/{id}/update"), ("DELETE", "/services/{id}"),
    ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/tasks"), ("GET", "/tasks/{id}"),
    ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/{id}"),
    ("DELETE", "/secrets/{id}"), ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/{id}"),
    ("DELETE", "/configs/{id}"), ("POST", "/configs/{id}/update"),
]


class SwarmRoutes:
    def __init__(self, backend: SwarmBackend) -> None:
        self.b = backend

    def routes(self) -> list[Route]:
        return [Route(m, p, self.manager_only) for m, p in _MANAGER_ROUTES] + [
            Route("GET", "/services/{id}/logs", self.logs),
            Route("GET", "/tasks/{id}/logs", self.logs),
            Route("POST", "/swarm/leave", self.leave),
            Route("POST", "/swarm/init", self.init),
            Route("POST", "/swarm/join", self.join),
        ]

    async def manager_only(self, req: Request) -> AnyResponse:
        self.b.require_manager()

    async def logs(self, req: Request) -> AnyResponse:
        if not (req.q_bool("stdout") or req.q_bool("stderr")):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        return await self.manager_only(req)

    async def leave(self, req: Request) -> AnyResponse:
        await self.b.leave(req.q_bool("force"))
        return empty(200)

    async def init(self, req: Request) -> AnyResponse:
        self.b.init()

    async def join(self, req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), SwarmJoinRequest)
        await self.b.join(list(body.RemoteAddrs or []), body.JoinToken, body.Availability,
                          body.AdvertiseAddr, body.ListenAddr, body.DataPathAddr)
        return empty(200)


def routes(backend: SwarmBackend) -> list[Route]:
    return SwarmRoutes(backend).routes()
