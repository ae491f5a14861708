"""Routes are data: each api/routes module exposes `routes(backend) -> list[Route]`."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import NotFound
from .http import Handler


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str        # e.g. "/containers/{id}/start"; {name:path} matches slashes
    handler: Handler
    # the handler's first step (up to its first real wait) may run in the connection's
    # callback, without a task: it must not need asyncio.current_task() before it
    # awaits (no asyncio.timeout, TaskGroup or outgoing HTTP there). Reads of the state.
    inline: bool = False


def _compile(pattern: str) -> re.Pattern[str]:
    def repl(m: re.Match[str]) -> str:
        name, _, kind = m.group(1).partition(":")
        return f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)"
    return re.compile("^" + re.sub(r"\{([^}]+)\}", repl, pattern) + "$")


class Router:
    def __init__(self) -> None:
        self._static: dict[tuple[str, str], Route] = {}
        self._dynamic: list[tuple[str, re.Pattern[str], Route]] = []

    def add(self, routes: list[Route]) -> None:
        for r in routes:
            if "{" in r.pattern:
                self._dynamic.append((r.method, _compile(r.pattern), r))
            else:
                self._static[(r.method, r.pattern)] = r

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        route, params = self.lookup(method, path)
        return route.handler, params

    def lookup(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route of a request and its path parameters; NotFound if none."""
        if method == "HEAD" and (method, path) not in self._static:
            r = self._static.get(("HEAD", path)) or self._static.get(("GET", path))
        else:
            r = self._static.get((method, path))
        if r is not None:
            return r, {}
        for wanted in ((method, "GET") if method == "HEAD" else (method,)):
            for m, rx, route in self._dynamic:
                if m == wanted:
                    match = rx.match(path)
                    if match:
                        return route, match.groupdict()
        raise NotFound("page not found")
