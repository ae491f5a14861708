"""Managed plugin routes (/plugins): see plugins/managed.py."""
from __future__ import annotations

from typing import NoReturn, Protocol

from ..http import AnyResponse, Request, json_response
from ..router import Route


class PluginsBackend(Protocol):
    def list(self, filters: dict[str, list[str]]) -> list[object]: ...
    def get(self, name: str) -> object: ...
    def install(self) -> NoReturn: ...


class PluginRoutes:
    def __init__(self, backend: PluginsBackend) -> None:
        self.b = backend

    def routes(self) -> list[Route]:
        r = Route
        named = [r("GET", "/plugins/{name:path}/json", self.one),
                 r("DELETE", "/plugins/{name:path}", self.one)]
        named += [r("POST", f"/plugins/{{name:path}}/{verb}", self.one)
                  for verb in ("enable", "disable", "set", "push", "upgrade")]
        return [r("GET", "/plugins", self.list),
                r("GET", "/plugins/privileges", self.install),
                r("POST", "/plugins/pull", self.install),
                r("POST", "/plugins/create", self.install),
                *named]

    async def list(self, req: Request) -> AnyResponse:
        return json_response(self.b.list(req.filters()))

    async def one(self, req: Request) -> AnyResponse:
        req.q_int("timeout")                     # enable's, checked first as dockerd does
        return json_response(self.b.get(req.params["name"]))

    async def install(self, req: Request) -> AnyResponse:
        self.b.install()


def routes(backend: PluginsBackend) -> list[Route]:
    return PluginRoutes(backend).routes()
