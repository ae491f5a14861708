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


def _compile(pattern: str) -> re.Pattern[str]:
    def repl(m: re.Match[str]) -> str:
        name, _, kind = m.group(1).partition(":")
        return f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)"
    return re.compile("^" + re.sub(r"\{([^}]+)\}", repl, pattern) + "$")


class Router:
    def __init__(self) -> None:
        self._static: dict[tuple[str, str], Handler] = {}
        self._dynamic: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, routes: list[Route]) -> None:
        for r in routes:
            if "{" in r.pattern:
                self._dynamic.append((r.method, _compile(r.pattern), r.handler))
            else:
                self._static[(r.method, r.pattern)] = r.handler

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        if method == "HEAD" and (method, path) not in self._static:
            h = self._static.get(("HEAD", path)) or self._static.get(("GET", path))
        else:
            h = self._static.get((method, path))
        if h is not None:
            return h, {}
        for wanted in ((method, "GET") if method == "HEAD" else (method,)):
            for m, rx, handler in self._dynamic:
                if m == wanted:
                    match = rx.match(path)
                    if match:
                        return handler, match.groupdict()
        raise NotFound("page not found")
