"""One HTTP/1.1 client connection (util/httpclient.py's): an asyncio protocol that
writes requests and parses each response with httptools, keeping the body in a
bounded buffer (reading pauses above _HIGH bytes, so a slow consumer holds back
the server rather than filling memory), and the error family of the client."""
from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections import deque

import httptools

from .writeflow import WriteFlow

_HIGH, _LOW = 1 << 20, 256 << 10      # body buffer: pause reading above, resume below
_MAX_HEAD = 1 << 20                   # response head bytes, 1xx heads included (Go's limit)
_MAX_HEADERS = 1000                   # header lines in one response head


class HTTPError(Exception):
    """Any failure of an HTTP request (the one family callers catch)."""


class InvalidURL(HTTPError):
    """Not an http(s) URL this client can request."""


class ConnectError(HTTPError):
    """The connection could not be made: name lookup, refused, unreachable, TLS;
    worded as Go's net package does (`dial tcp 127.0.0.1:1: connect: connection
    refused`, `dial tcp: lookup x: ...`, `dial unix /p: connect: ...`)."""

    def __init__(self, host: str, port: int, error: OSError, unix: bool = False) -> None:
        self.host, self.port, self.os_error = host, port, error
        super().__init__(_dial_error(host, port, error, unix))


def _dial_error(host: str, port: int, e: OSError, unix: bool) -> str:
    where = f"dial unix {host}" if unix else \
        f"dial tcp {f'[{host}]' if ':' in host else host}:{port}"
    if isinstance(e, socket.gaierror):
        return f"dial tcp: lookup {host}: {(e.strerror or str(e)).lower()}"
    if "ssl" in sys.modules:      # else no TLS was tried (ssl loads on first use)
        import ssl
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"{where}: tls: {e.verify_message or e.reason}"
        if isinstance(e, ssl.SSLError):
            return f"{where}: tls: {e.reason or e}"
    if e.errno:
        return f"{where}: connect: {os.strerror(e.errno).lower()}"
    return f"{where}: {e}"


class ServerDisconnected(HTTPError):
    """The server closed the connection before the whole response head arrived."""


class PayloadError(HTTPError):
    """The response body was cut short or malformed."""


class ResponseTimeout(HTTPError):
    """No connection, response head or body bytes within the time allowed;
    `stage` is "connect", "write", "headers" or "body"."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        super().__init__({"connect": "i/o timeout (connecting)",
                          "headers": "timeout awaiting response headers",
                          "write": "i/o timeout (sending the request body)"}.get(
                              stage, "i/o timeout (reading the body)"))


class Connection(asyncio.Protocol):
    """A connection; `begin()` readies it for the next response."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False               # taken from the pool (not freshly connected)
        self._lost: BaseException | None = None
        self._error: HTTPError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writes = WriteFlow()
        self._read_paused = False
        self._parser: httptools.HttpResponseParser | None = None
        self.begin(False)
        self._parser = None                # idle until a request begins

    # --- per response ------------------------------------------------------------------
    def begin(self, head_only: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.headers_done = self.complete = False
        self.keep_alive = False
        self.abandoned = False             # request body not all sent: never reused
        self._interim = self._trailing = False
        self._head_bytes = 0
        self.until_close = False           # no Content-Length, not chunked: ends at EOF
        self.got_bytes = False
        self.body: deque[bytes] = deque()
        self.buffered = 0

    def on_status(self, reason: bytes) -> None:
        self.reason = reason.decode("latin-1")

    def on_message_begin(self) -> None:
        if self.complete:                  # bytes after the response: not reused
            self._trailing = True
            raise PayloadError("data after the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= _MAX_HEADERS:
            raise PayloadError("too many response headers")
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:    # 100 Continue, 103 Early Hints
            self._interim = True           # its message_complete is not the answer's
            self.headers = []
            return
        self.status = status
        self.headers_done = True
        names = {n.lower(): v for n, v in self.headers}
        chunked = "chunked" in names.get("transfer-encoding", "").lower()
        self.until_close = not chunked and "content-length" not in names
        if self.head_only or self.status in (204, 304):
            self.complete = True
            self.until_close = False
            self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        if self.head_only:
            return
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        assert self._parser is not None
        if self._interim:
            self._interim = False
        elif not self.complete:
            self.complete = True
            self.keep_alive = self._parser.should_keep_alive()

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._parser is None:           # idle in the pool: nothing may arrive
            self.close()
            return
        self.got_bytes = True
        if self.complete:
            self.keep_alive = False        # more than the response: not reused
        else:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError as e:
                if self._trailing:
                    self.keep_alive = False
                else:
                    cause = e.__context__ if isinstance(e.__context__, HTTPError) else e
                    self._error = PayloadError(f"invalid HTTP response: {cause}")
                    self.close()
            if not self.headers_done:
                self._head_bytes += len(data)
                if self._head_bytes > _MAX_HEAD and not self.closed:
                    self._error = PayloadError("invalid HTTP response: headers too large")
                    self.close()
        self._wake()
        if self.headers_done:
            self._writes.release()         # answered while sending: stop sending

    def eof_received(self) -> bool | None:
        return None                        # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._lost = exc
        if self.headers_done and not self.complete and self.until_close and exc is None:
            self.complete = True           # a close-delimited body ends here (not a reset)
        self._wake()
        self._writes.release()

    def pause_writing(self) -> None:
        self._writes.pause()

    def resume_writing(self) -> None:
        self._writes.resume()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- for the client ------------------------------------------------------------------
    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def idle(self) -> None:
        """Back in the pool: no response in progress."""
        self._parser = None
        self.reused = True

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Send data; wait (timeout: at most that long) while the buffer is full,
        unless the response head has arrived."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ServerDisconnected("server disconnected")
        if self.headers_done:              # answered before the request was all sent
            self.abandoned = True
            return
        self.transport.write(data)
        if self._writes.paused:
            try:
                async with asyncio.timeout(timeout):
                    await self._writes.wait()
            except TimeoutError:
                raise ResponseTimeout("write") from None
            if self.headers_done and self._writes.paused:
                self.abandoned = True
            if self.closed:
                raise ServerDisconnected("server disconnected")

    async def _wait(self, timeout: float | None, stage: str) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            raise ResponseTimeout(stage) from None
        finally:
            self._waiter = None

    async def read_head(self, timeout: float | None) -> None:
        while not self.headers_done:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise ServerDisconnected("server disconnected") from self._lost
            await self._wait(timeout, "headers")

    async def read_body(self, size: int, timeout: float | None) -> bytes:
        """Up to size body bytes (what is there, waiting for some); b"" at the end."""
        while not self.body:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            if self.closed:
                why = f": {self._lost}" if self._lost is not None else ""
                raise PayloadError(f"response payload is not completed{why}")
            await self._wait(timeout, "body")
        parts: list[bytes] = []
        n = 0
        while self.body and n < size:
            piece = self.body.popleft()
            if n + len(piece) > size:
                self.body.appendleft(piece[size - n:])
                piece = piece[:size - n]
            parts.append(piece)
            n += len(piece)
        self.buffered -= n
        if self._read_paused and self.buffered < _LOW and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.body and not self.closed \
            and not self.abandoned
