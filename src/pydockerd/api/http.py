"""Request and response types of pydockerd's small HTTP/1.1 layer."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs

import msgspec

from ..errors import InvalidParameter
from .jsonin import parse_json

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
    """Docker's filters JSON: {"k": ["v", ...]} or the legacy {"k": {"v": true}}
    (a bare string value is taken as a one-element list)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, val in raw.items():
        if isinstance(val, dict) and all(isinstance(on, bool) for on in val.values()):
            out[key] = [k for k, on in val.items() if on]
        elif isinstance(val, list) and all(isinstance(v, str) for v in val):
            out[key] = list(val)
        elif isinstance(val, str):
            out[key] = [val]
        else:
            raise InvalidParameter(f"invalid filter '{key}': expected a list of strings")
    return out


_ATOI = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = (1 << 63) - 1


def go_quote(s: str) -> str:
    """Go's %q of a string (close enough for error messages)."""
    return json.dumps(s, ensure_ascii=False)


def atoi(name: str, value: str) -> int:
    """Go's strconv.Atoi (64-bit): ASCII digits with an optional sign, nothing else."""
    if not _ATOI.fullmatch(value):
        raise InvalidParameter(f"invalid value for {name}: strconv.Atoi: parsing "
                               f"{go_quote(value)}: invalid syntax")
    digits = value.lstrip("+-").lstrip("0")
    n = int(value) if len(digits) <= 19 else _INT64_MAX + 1
    if not -_INT64_MAX - 1 <= n <= _INT64_MAX:
        raise InvalidParameter(f"invalid value for {name}: strconv.Atoi: parsing "
                               f"{go_quote(value)}: value out of range")
    return n


def bool_value(value: str) -> bool:
    """moby's httputils.BoolValue: "", "0", "no", "false", "none" are false."""
    return value.strip().lower() not in ("", "0", "no", "false", "none")


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

    @classmethod
    def parse_query(cls, qs: str) -> dict[str, list[str]]:
        if not qs:
            return {}
        if "%" in qs or "+" in qs:
            query = parse_qs(qs, keep_blank_values=True)
        else:                            # nothing to decode: parse_qs's result, faster
            query = {}
            for piece in qs.split("&"):
                if piece:
                    k, _, v = piece.partition("=")
                    query.setdefault(k, []).append(v)
        for k, vals in query.items():
            if "\x00" in k or any("\x00" in v for v in vals):
                raise InvalidParameter(f"invalid query parameter {go_quote(k)}: "
                                       "contains a NUL byte")
        return query

    def q(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter (Go's FormValue)."""
        v = self.query.get(name)
        return v[0] if v else default

    def q_list(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def q_bool(self, name: str, default: bool = False) -> bool:
        """moby's BoolValueOrDefault: `default` when absent, else BoolValue."""
        v = self.q(name)
        return default if v is None else bool_value(v)

    def q_int(self, name: str, default: int | None = None) -> int | None:
        """An integer parameter as dockerd reads it (strconv.Atoi); absent or empty
        is `default`, anything else not an integer is a 400."""
        v = self.q(name)
        if v is None or v == "":
            return default
        return atoi(name, v)

    def tty_size(self) -> tuple[int, int]:
        """`h` and `w` of a resize: both required integers (dockerd: strconv.Atoi)."""
        return atoi("h", self.q("h") or ""), atoi("w", self.q("w") or "")

    def q_json(self, name: str) -> Any:
        """A JSON-valued parameter (filters, buildargs, labels...); empty is None."""
        v = self.q(name)
        if not v:
            return None
        return parse_json(v, name)

    def filters(self) -> dict[str, list[str]]:
        """The `filters` query, normalised (see parse_filters)."""
        return parse_filters(self.q_json("filters"))

    async def json(self, default: Any = None) -> Any:
        raw = await self.body.read()
        if not raw.strip():
            return default
        return parse_json(raw)

    def version_at_least(self, major: int, minor: int) -> bool:
        return self.api_version >= (major, minor)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, status: int = 200) -> Response:
    """A JSON body (msgspec: ~10x faster than json.dumps on a `docker ps` list; non-ASCII
    text as UTF-8, as Go writes it)."""
    return Response(status, msgspec.json.encode(obj) + b"\n")


def empty(status: int = 204) -> Response:
    return Response(status, b"", None)


def json_message_error(message: str) -> bytes:
    """dockerd's streamformatter error (pull, push, load, build, import streams)."""
    return json.dumps({"errorDetail": {"message": message}, "error": message}).encode() + b"\n"


@dataclass
class StreamResponse:
    """A chunked response whose body comes from an async iterator.

    The status line goes out with the first item (yield b"" to send it at once),
    so what the iterator raises before its first item is a plain error response.
    An error after that ends the stream with on_error(message); without one, a
    JSON stream ends with json_message_error and any other (a tar) is cut off.
    """

    chunks: AsyncIterator[bytes]
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    on_error: Callable[[str], bytes] | None = None

    def error_chunk(self, message: str) -> bytes | None:
        if self.on_error is not None:
            return self.on_error(message)
        if self.content_type == "application/json":
            return json_message_error(message)
        return None


@dataclass
class HijackResponse:
    """Switch the connection to raw bytes (101 UPGRADED) and hand it to `handler`."""

    handler: HijackHandler
    content_type: str = "application/vnd.docker.raw-stream"
    # a coroutine run after the 101 header went out but before handler starts
    on_upgraded: Callable[[], Awaitable[None]] | None = None
    # the raw status line and headers to send instead of Docker's (a websocket
    # handshake's 101 Switching Protocols, or its bare refusal)
    head: bytes | None = None
    # a coroutine run when the connection ends, whether or not handler ran: it
    # releases what the route made before answering (a pending attach session)
    on_closed: Callable[[], Awaitable[None]] | None = None


AnyResponse = Response | StreamResponse | HijackResponse
Handler = Callable[[Request], Awaitable[AnyResponse]]
