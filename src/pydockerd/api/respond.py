"""Writing answers on a connection: a buffered response in one write, a chunked
stream as its items come; a hijacked connection's status line, and its hand-over
to the route as a StreamReader/StreamWriter pair."""
from __future__ import annotations

import asyncio
from typing import Protocol

from .. import __version__
from .errormap import error_response, error_status
from ..util.sockets import unix_fd
from .heldwriter import HeadHeldWriter
from .http import HijackResponse, Response, StreamResponse
from .version import API_VERSION, version_str

REASONS = {100: "Continue", 101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content",
           304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 409: "Conflict", 414: "Request-URI Too Long",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable"}

# the headers every answer carries, as dockerd's
COMMON_HEADERS = [f"Api-Version: {version_str(API_VERSION)}", "Docker-Experimental: false",
                  "Ostype: linux", f"Server: Docker/{__version__} (linux)"]
_COMMON = "".join(h + "\r\n" for h in COMMON_HEADERS)


class Out(Protocol):
    """The connection side a response is written to."""

    answered: bool                 # the current request's status line is out
    client_gone: bool              # the client closed the connection during a stream

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


def _status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"


_PREFIXES: dict[tuple[int, str | None], bytes] = {}     # status line, common headers, type


def _prefix(status: int, content_type: str | None) -> bytes:
    """The head's constant start, encoded once per status and content type."""
    key = (status, content_type)
    got = _PREFIXES.get(key)
    if got is None:
        text = _status_line(status) + _COMMON
        if content_type:
            text += f"Content-Type: {content_type}\r\n"
        got = text.encode("latin-1")
        if len(_PREFIXES) < 64:
            _PREFIXES[key] = got
    return got


def response_bytes(resp: Response, keep: bool, head_only: bool) -> bytes:
    """Status line, headers and (unless HEAD, 204 or 304) the body of a buffered answer."""
    head = _prefix(resp.status, resp.content_type)
    if resp.headers:
        head += "".join(f"{k}: {v}\r\n" for k, v in resp.headers.items()).encode("latin-1")
    bodyless = resp.status in (204, 304)
    if not bodyless:
        head += b"Content-Length: %d\r\n" % len(resp.body)
    head += b"\r\n" if keep else b"Connection: close\r\n\r\n"
    return head if head_only or bodyless else head + resp.body


def write_response(out: Out, resp: Response, keep: bool, head_only: bool) -> None:
    out.answered = True
    out.write(response_bytes(resp, keep, head_only))


def hijack_head(resp: HijackResponse, upgrade: bool) -> bytes:
    """What goes out before a connection becomes raw bytes."""
    if resp.head is not None:
        return resp.head
    if upgrade:
        head = ("HTTP/1.1 101 UPGRADED\r\n"
                f"Content-Type: {resp.content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n")
    else:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {resp.content_type}\r\n"
    return (head + _COMMON + "\r\n").encode("latin-1")


def hijack_status(resp: HijackResponse, upgrade: bool) -> str:
    """The status of a hijacked answer, for the debug log."""
    if resp.head:
        return resp.head.split(b" ", 2)[1].decode("latin-1", "replace")
    return "101" if upgrade else "200"


async def write_stream(out: Out, resp: StreamResponse, head_only: bool, what: str) -> bool:
    """Send a chunked response. The status line waits for the stream's first
    item (an empty one just sends it), so an error raised before that is a
    plain error response, as dockerd answers before its output is flushed.
    An error after it ends the stream in the stream's own format (or cuts
    the connection when the format has none, e.g. a tar). False: close."""
    it = resp.chunks
    try:
        first: bytes | None = None
        if not head_only:
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                first = None
            except Exception as e:  # noqa: BLE001 - before the status line
                write_response(out, error_response(e, what), True, False)
                await out.drain()
                return True
        lines = [_status_line(resp.status), _COMMON, f"Content-Type: {resp.content_type}\r\n",
                 "Transfer-Encoding: chunked\r\n"]
        for k, v in resp.headers.items():
            lines.append(f"{k}: {v}\r\n")
        out.answered = True
        out.write(("".join(lines) + "\r\n").encode("latin-1"))
        await out.drain()
        if head_only:                         # a HEAD answer has no body, not even chunks
            return True
        chunk = first
        try:
            while chunk is not None:
                if chunk:
                    out.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await out.drain()
                try:
                    chunk = await it.__anext__()
                except StopAsyncIteration:
                    chunk = None
        except ConnectionError:
            raise
        except asyncio.CancelledError:
            # the daemon shuts down: end the stream cleanly (`docker events` and
            # `docker logs -f` see its end, not a broken connection)
            if out.client_gone:
                raise
            try:
                out.write(b"0\r\n\r\n")
            except Exception:  # noqa: BLE001 - the client is gone already
                pass
            raise
        except Exception as e:  # noqa: BLE001 - after the status line
            tail = resp.error_chunk(error_status(e, what)[1])
            if tail is None:
                return False
            out.write(b"%x\r\n%s\r\n" % (len(tail), tail))
        out.write(b"0\r\n\r\n")
        await out.drain()
        return True
    finally:
        await close_stream(it)


async def close_stream(it: object) -> None:
    """End a stream's iterator (an async generator releases what it holds)."""
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


def hand_over(transport: asyncio.Transport, rest: bytes, eof: bool,
              write_paused: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The connection as a StreamReader/StreamWriter pair on the same transport,
    starting with `rest`, the bytes that came after the request. On a unix socket
    the writer holds the first output until the client read the head (heldwriter)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
    proto = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport.set_protocol(proto)
    proto.connection_made(transport)
    if rest:
        reader.feed_data(rest)
    if eof:
        reader.feed_eof()
    if write_paused:
        proto.pause_writing()
    if not transport.is_closing():
        transport.resume_reading()
    fd = unix_fd(transport)
    if fd is None:
        return reader, asyncio.StreamWriter(transport, proto, reader, loop)
    return reader, HeadHeldWriter(transport, proto, reader, loop, fd)
