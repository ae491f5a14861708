"""Managed plugin routes (/plugins): see plugins/managed/."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec

from ...distribution.auth import AuthConfig
from ...errors import InvalidParameter
from ...models.plugin import PluginPrivileges, PluginSetArgs
from ...plugins.managed import PluginRecord
from ...progress import ProgressEvent
from ..decode import decode_body
from ..http import AnyResponse, Request, StreamResponse, empty, json_response
from ..router import Route
from ..wire_plugins import plugin, plugin_list
from ..wire_progress import lines


class PluginsBackend(Protocol):
    def listing(self, filters: dict[str, list[str]]) -> list[PluginRecord]: ...
    def get(self, name: str) -> PluginRecord: ...
    async def enable(self, name: str, timeout: int) -> None: ...
    async def disable(self, name: str, force: bool) -> None: ...
    async def remove(self, name: str, force: bool) -> None: ...
    async def set(self, name: str, args: list[str]) -> None: ...
    async def privileges(self, remote: str, auth: AuthConfig) -> list[dict[str, Any]]: ...
    async def pull(self, remote: str, name: str | None, granted: list[dict[str, Any]],
                   auth: AuthConfig) -> tuple[str, AsyncIterator[ProgressEvent]]: ...
    async def upgrade(self, name: str, remote: str, granted: list[dict[str, Any]],
                      auth: AuthConfig) -> AsyncIterator[ProgressEvent]: ...
    async def push(self, name: str, auth: AuthConfig) -> AsyncIterator[ProgressEvent]: ...
    async def create(self, name: str, body: AsyncIterator[bytes]) -> None: ...


def _auth(req: Request) -> AuthConfig:
    return AuthConfig.from_header(req.headers.get("x-registry-auth"))


def _remote(req: Request) -> str:
    remote = req.q("remote") or ""
    if not remote:
        raise InvalidParameter("remote is required")
    return remote


def _granted(privs: PluginPrivileges) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(p) for p in privs]


class PluginRoutes:
    def __init__(self, backend: PluginsBackend) -> None:
        self.b = backend

    def routes(self) -> list[Route]:
        r = Route
        return [r("GET", "/plugins", self.list),
                r("GET", "/plugins/privileges", self.privileges),
                r("POST", "/plugins/pull", self.pull),
                r("POST", "/plugins/create", self.create),
                r("GET", "/plugins/{name:path}/json", self.inspect),
                r("DELETE", "/plugins/{name:path}", self.remove),
                r("POST", "/plugins/{name:path}/enable", self.enable),
                r("POST", "/plugins/{name:path}/disable", self.disable),
                r("POST", "/plugins/{name:path}/set", self.set),
                r("POST", "/plugins/{name:path}/push", self.push),
                r("POST", "/plugins/{name:path}/upgrade", self.upgrade)]

    async def list(self, req: Request) -> AnyResponse:
        return json_response(plugin_list(self.b.listing(req.filters())))

    async def inspect(self, req: Request) -> AnyResponse:
        return json_response(plugin(self.b.get(req.params["name"])))

    async def remove(self, req: Request) -> AnyResponse:
        await self.b.remove(req.params["name"], req.q_bool("force"))
        return empty(200)

    async def enable(self, req: Request) -> AnyResponse:
        timeout = req.q_int("timeout") or 0
        await self.b.enable(req.params["name"], timeout)
        return empty(200)

    async def disable(self, req: Request) -> AnyResponse:
        await self.b.disable(req.params["name"], req.q_bool("force"))
        return empty(200)

    async def set(self, req: Request) -> AnyResponse:
        args = decode_body(await req.body.read(), PluginSetArgs)
        await self.b.set(req.params["name"], args)
        return empty(204)

    async def privileges(self, req: Request) -> AnyResponse:
        return json_response(await self.b.privileges(_remote(req), _auth(req)))

    async def pull(self, req: Request) -> AnyResponse:
        remote = _remote(req)
        granted = _granted(decode_body(await req.body.read(), PluginPrivileges))
        name, events = await self.b.pull(remote, req.q("name"), granted, _auth(req))
        return StreamResponse(lines(events), headers={"Docker-Plugin-Name": name})

    async def upgrade(self, req: Request) -> AnyResponse:
        remote = _remote(req)
        granted = _granted(decode_body(await req.body.read(), PluginPrivileges))
        return StreamResponse(lines(await self.b.upgrade(req.params["name"], remote,
                                                         granted, _auth(req))))

    async def push(self, req: Request) -> AnyResponse:
        return StreamResponse(lines(await self.b.push(req.params["name"], _auth(req))))

    async def create(self, req: Request) -> AnyResponse:
        name = req.q("name") or ""
        if not name:
            raise InvalidParameter("name is required")
        await self.b.create(name, req.body.chunks())
        return empty(204)


def routes(backend: PluginsBackend) -> list[Route]:
    return PluginRoutes(backend).routes()
