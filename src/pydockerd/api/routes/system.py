"""System routes: ping, version, info, events, df."""
from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator, Protocol

from ...errors import InvalidParameter
from ...events import Event, EventBus
from ...system import SystemDiskUsage, SystemInfo, VersionInfo
from ...util.ids import parse_unix_or_rfc3339_ns
from ..http import AnyResponse, Request, Response, StreamResponse, json_response
from ..router import Route
from .. import wire_system


class SystemBackend(Protocol):
    def version(self) -> VersionInfo: ...
    async def info(self) -> SystemInfo: ...
    async def disk_usage(self, types: list[str]) -> SystemDiskUsage: ...


_EVENT_FILTERS = {"container", "image", "network", "volume", "daemon", "event", "type",
                  "label", "plugin", "node", "service", "secret", "config", "scope"}


def _ts(v: str | None) -> int | None:
    """`since`/`until` (unix seconds with fraction, or RFC3339) -> nanoseconds."""
    if not v:
        return None
    try:
        return parse_unix_or_rfc3339_ns(v)
    except ValueError:
        raise InvalidParameter(f"invalid timestamp {v}") from None


def event_matches(ev: Event, f: dict[str, list[str]]) -> bool:
    if f.get("type") and ev.type not in f["type"]:
        return False
    if f.get("event") and not any(ev.action == a or ev.action.startswith(a + ":")
                                  for a in f["event"]):
        return False
    for kind in ("container", "image", "network", "volume"):
        if f.get(kind):
            if ev.type != kind:
                return False
            name = ev.attributes.get("name", "")
            if not any(v == ev.actor_id or ev.actor_id.startswith(v) or v == name
                       for v in f[kind]):
                return False
    for lab in f.get("label", []):
        k, sep, v = lab.partition("=")
        if k not in ev.attributes or (sep and ev.attributes[k] != v):
            return False
    if f.get("daemon") and ev.type != "daemon":
        return False
    return True


class SystemRoutes:
    def __init__(self, backend: SystemBackend, events: EventBus) -> None:
        self.b = backend
        self.events = events

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/_ping", self.ping, inline=True),
            Route("HEAD", "/_ping", self.ping, inline=True),
            Route("GET", "/version", self.version, inline=True),
            Route("GET", "/info", self.info),
            Route("GET", "/events", self.get_events),
            Route("GET", "/system/df", self.df),
        ]

    async def ping(self, req: Request) -> AnyResponse:
        return Response(200, b"OK", "text/plain; charset=utf-8",
                        {"Builder-Version": "1", "Cache-Control": "no-cache, no-store, "
                         "must-revalidate", "Pragma": "no-cache"})

    async def version(self, req: Request) -> AnyResponse:
        return json_response(wire_system.version(self.b.version()))

    async def info(self, req: Request) -> AnyResponse:
        return json_response(wire_system.info(await self.b.info()))

    async def df(self, req: Request) -> AnyResponse:
        du = await self.b.disk_usage(req.q_list("type"))
        return json_response(wire_system.disk_usage(du, req.api_version))

    async def get_events(self, req: Request) -> AnyResponse:
        filters = req.filters()
        for k in filters:
            if k not in _EVENT_FILTERS:
                raise InvalidParameter(f"invalid filter '{k}'")
        since, until = _ts(req.q("since")), _ts(req.q("until"))
        now = time.time_ns()
        queue = self.events.subscribe() if until is None or until > now else None

        async def body() -> AsyncIterator[bytes]:
            try:
                if since is not None:
                    for ev in self.events.history(since, until):
                        if event_matches(ev, filters):
                            yield json.dumps(ev.to_wire()).encode() + b"\n"
                if queue is None:
                    return
                deadline = None if until is None else until / 1e9
                yield b""
                while True:
                    timeout = None if deadline is None else max(0.0, deadline - time.time())
                    try:
                        ev = await asyncio.wait_for(queue.get(), timeout)
                    except asyncio.TimeoutError:
                        return
                    if until is not None and ev.time_nano > until:
                        return
                    if event_matches(ev, filters):
                        yield json.dumps(ev.to_wire()).encode() + b"\n"
            finally:
                if queue is not None:
                    self.events.unsubscribe(queue)
        return StreamResponse(body())


def routes(backend: SystemBackend, events: EventBus) -> list[Route]:
    return SystemRoutes(backend, events).routes()


__all__ = ["routes"]
