"""Request and response types of pydockerd's small HTTP/1.1 layer."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs

from ..errors import InvalidParameter

if TYPE_CHECKING:
    import asyncio

# a hijacked connection handler gets the raw reader/writer after 101 UPGRADED
HijackHandler = Callable[["asyncio.StreamReader", "asyncio.StreamWriter"], Awaitable[None]]


class Body:
    """The request body, read on demand (pulls bytes from the socket)."""

    def __init__(self, pull: Callable[[], Awaitable[bytes]]) -> None:
        self._pull = pull

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._pull()
            if not chunk:
                return
            yield chunk

    async def read(self, limit: int = 64 << 20) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for c in self.chunks():
            size += len(c)
            if size > limit:
                raise InvalidParameter("request body too large")
            parts.append(c)
        return b"".join(parts)


def parse_filters(raw: Any) -> dict[str, list[str]]:
    """Docker's filters JSON: {"k": ["v", ...]} or the legacy {"k": {"v": true}}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, val in raw.items():
        if isinstance(val, dict):
            out[key] = [str(k) for k, on in val.items() if on]
        elif isinstance(val, list):
            out[key] = [str(v) for v in val]
        elif isinstance(val, str):
            out[key] = [val]
        else:
            raise InvalidParameter(f"invalid filter '{key}'")
    return out


@dataclass
class Request:
    method: str
    path: str                         # without the /vX.Y prefix
    query: dict[str, list[str]]
    headers: dict[str, str]           # lower-case names
    body: Body
    api_version: tuple[int, int]
    params: dict[str, str] = field(default_factory=dict)
    upgrade: bool = False             # client asked for Upgrade: tcp
    initial_raw: bytes = b""          # bytes after the headers of an upgrade request

    @classmethod
    def parse_query(cls, qs: str) -> dict[str, list[str]]:
        return parse_qs(qs, keep_blank_values=True)

    def q(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[-1] if v else default

    def q_list(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def q_bool(self, name: str, default: bool = False) -> bool:
        v = self.q(name)
        if v is None:
            return default
        return v.lower() not in ("", "0", "false", "no")

    def q_int(self, name: str, default: int | None = None) -> int | None:
        v = self.q(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise InvalidParameter(f"invalid value for {name}: {v!r}") from None

    def q_json(self, name: str) -> Any:
        v = self.q(name)
        if not v:
            return None
        try:
            return json.loads(v)
        except ValueError as e:
            raise InvalidParameter(f"invalid JSON in {name}: {e}") from None

    def filters(self) -> dict[str, list[str]]:
        """The `filters` query, normalised (see parse_filters)."""
        return parse_filters(self.q_json("filters"))

    async def json(self, default: Any = None) -> Any:
        raw = await self.body.read()
        if not raw.strip():
            return default
        try:
            return json.loads(raw)
        except ValueError as e:
            raise InvalidParameter(f"invalid JSON: {e}") from None

    def version_at_least(self, major: int, minor: int) -> bool:
        return self.api_version >= (major, minor)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, (json.dumps(obj, separators=(",", ":")) + "\n").encode())


def empty(status: int = 204) -> Response:
    return Response(status, b"", None)


@dataclass
class StreamResponse:
    """A chunked response whose body comes from an async iterator."""

    chunks: AsyncIterator[bytes]
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HijackResponse:
    """Switch the connection to raw bytes (101 UPGRADED) and hand it to `handler`."""

    handler: HijackHandler
    content_type: str = "application/vnd.docker.raw-stream"
    # a coroutine run after the 101 header went out but before handler starts
    on_upgraded: Callable[[], Awaitable[None]] | None = None


AnyResponse = Response | StreamResponse | HijackResponse
Handler = Callable[[Request], Awaitable[AnyResponse]]
