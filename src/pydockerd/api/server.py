"""HTTP/1.1 on asyncio streams + httptools: listeners, version handling,
keep-alive, chunked responses, hijacking, and the one error -> status mapping.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httptools

from .. import __version__
from ..errors import DockerError, InvalidParameter, no_space
from .http import Body, HijackResponse, Request, Response, StreamResponse
from .router import Router

log = logging.getLogger("pydockerd.api")

API_VERSION = (1, 50)
MIN_API_VERSION = (1, 24)
_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_REASONS = {100: "Continue", 101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content",
            304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 409: "Conflict", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable"}


def version_str(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


@dataclass
class _Message:
    method: str = ""
    url: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    body: deque[bytes] = field(default_factory=deque)
    headers_done: bool = False
    complete: bool = False
    keep_alive: bool = True


class _Parser:
    """Collects httptools callbacks into _Message objects (pipelining-safe)."""

    def __init__(self) -> None:
        self.messages: deque[_Message] = deque()
        self._cur: _Message | None = None
        self._hname = b""
        self.p = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self._cur = _Message()
        self.messages.append(self._cur)

    def on_url(self, url: bytes) -> None:
        assert self._cur
        self._cur.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._cur
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        if key in self._cur.headers:
            self._cur.headers[key] += ", " + val
        else:
            self._cur.headers[key] = val

    def on_headers_complete(self) -> None:
        assert self._cur
        self._cur.method = self.p.get_method().decode()
        self._cur.keep_alive = self.p.should_keep_alive()
        self._cur.headers_done = True

    def on_body(self, body: bytes) -> None:
        assert self._cur
        self._cur.body.append(bytes(body))

    def on_message_complete(self) -> None:
        assert self._cur
        self._cur.complete = True


class _Connection:
    def __init__(self, server: "ApiServer", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.parser = _Parser()
        self.upgrade_rest: bytes | None = None   # raw bytes after an upgrade request's head
        self.eof = False

    async def _feed(self) -> bool:
        """Read more bytes into the parser. False on EOF."""
        if self.eof or self.upgrade_rest is not None:
            return False
        data = await self.reader.read(65536)
        if not data:
            self.eof = True
            return False
        try:
            self.parser.p.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self.upgrade_rest = data[e.args[0]:]
        except httptools.HttpParserError as e:
            raise InvalidParameter(f"malformed HTTP request: {e}") from None
        return True

    async def run(self) -> None:
        try:
            while True:
                while not self.parser.messages or not self.parser.messages[0].headers_done:
                    if not await self._feed():
                        return
                msg = self.parser.messages[0]
                keep = await self._serve(msg)
                self.parser.messages.popleft()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except InvalidParameter as e:
            await self._write_simple(400, {"message": e.message}, close=True)
        finally:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - closing a dead socket
                pass

    async def _pull_body(self, msg: _Message) -> bytes:
        while not msg.body:
            if msg.complete or not await self._feed():
                return b""
        return msg.body.popleft()

    async def _serve(self, msg: _Message) -> bool:
        upgrade = self.upgrade_rest is not None
        raw = b""
        if upgrade:
            # httptools stops at the head of an upgrade request: read its body by hand.
            rest = self.upgrade_rest or b""
            length = int(msg.headers.get("content-length", "0") or 0)
            while len(rest) < length:
                more = await self.reader.read(length - len(rest))
                if not more:
                    break
                rest += more
            body_bytes, raw = rest[:length], rest[length:]
            sent = [False]

            async def pull_fixed() -> bytes:
                if sent[0]:
                    return b""
                sent[0] = True
                return body_bytes
            body = Body(pull_fixed)
        else:
            body = Body(lambda: self._pull_body(msg))
        url = httptools.parse_url(msg.url)
        path = unquote((url.path or b"/").decode("utf-8", "replace"))
        qs = (url.query or b"").decode("latin-1")
        version = API_VERSION
        m = _VERSION_PREFIX.match(path)
        try:
            if m:
                version = (int(m.group(1)), int(m.group(2)))
                path = m.group(3)
                if version > API_VERSION:
                    raise InvalidParameter(
                        f"client version {version_str(version)} is too new. "
                        f"Maximum supported API version is {version_str(API_VERSION)}")
                if version < MIN_API_VERSION:
                    raise InvalidParameter(
                        f"client version {version_str(version)} is too old. Minimum supported "
                        f"API version is {version_str(MIN_API_VERSION)}, please upgrade your "
                        "client to a newer version")
            req = Request(msg.method, path, Request.parse_query(qs), msg.headers, body,
                          version, upgrade=upgrade, initial_raw=raw)
            handler, params = self.server.router.resolve(msg.method, path)
            req.params = params
            try:
                resp = await handler(req)
            except Exception as exc:   # a full disk is a NoSpace, wherever it surfaced
                full = no_space(exc)
                if full is None:
                    raise
                raise full from exc
        except DockerError as e:
            if e.status >= 500:
                log.error("%s %s: %s", msg.method, path, e.message)
            else:
                log.debug("%s %s -> %d: %s", msg.method, path, e.status, e.message)
            resp = Response(e.status, (json.dumps({"message": e.message}) + "\n").encode())
        except Exception as e:  # noqa: BLE001 - last resort, keep serving
            log.exception("%s %s failed", msg.method, path)
            resp = Response(500, (json.dumps({"message": f"internal error: {e}"}) + "\n").encode())
        log.debug("%s %s -> %s", msg.method, path, getattr(resp, "status", 101))
        if isinstance(resp, HijackResponse):
            await self._hijack(resp, upgrade, raw)
            return False
        keep = msg.keep_alive and not upgrade
        head_only = msg.method == "HEAD"
        if isinstance(resp, StreamResponse):
            # a streaming body may consume the request body as it goes (docker load)
            await self._write_stream(resp, head_only)
        else:
            await self._write_response(resp, keep, head_only)
        # drain what the handler did not read of the body
        if not upgrade:
            while await self._pull_body(msg):
                pass
        return keep

    def _common_headers(self) -> list[str]:
        return [f"Api-Version: {version_str(API_VERSION)}", "Docker-Experimental: false",
                "Ostype: linux", f"Server: Docker/{__version__} (linux)"]

    async def _write_response(self, resp: Response, keep: bool, head_only: bool) -> None:
        lines = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}",
                 *self._common_headers()]
        if resp.content_type:
            lines.append(f"Content-Type: {resp.content_type}")
        for k, v in resp.headers.items():
            lines.append(f"{k}: {v}")
        if resp.status not in (204, 304):
            lines.append(f"Content-Length: {len(resp.body)}")
        if not keep:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.writer.write(head if head_only or resp.status in (204, 304) else head + resp.body)
        await self.writer.drain()

    async def _write_simple(self, status: int, obj: Any, close: bool) -> None:
        try:
            await self._write_response(Response(status, json.dumps(obj).encode()), not close, False)
        except ConnectionError:
            pass

    async def _write_stream(self, resp: StreamResponse, head_only: bool) -> None:
        lines = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}",
                 *self._common_headers(), f"Content-Type: {resp.content_type}",
                 "Transfer-Encoding: chunked"]
        for k, v in resp.headers.items():
            lines.append(f"{k}: {v}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self.writer.drain()
        if head_only:
            self.writer.write(b"0\r\n\r\n")
            return
        it = resp.chunks
        try:
            async for chunk in it:
                if chunk:
                    self.writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await self.writer.drain()
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _hijack(self, resp: HijackResponse, upgrade: bool, raw: bytes) -> None:
        if upgrade:
            head = ("HTTP/1.1 101 UPGRADED\r\n"
                    f"Content-Type: {resp.content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                    + "".join(h + "\r\n" for h in self._common_headers()) + "\r\n")
        else:
            head = ("HTTP/1.1 200 OK\r\n"
                    f"Content-Type: {resp.content_type}\r\n"
                    + "".join(h + "\r\n" for h in self._common_headers()) + "\r\n")
        self.writer.write(head.encode("latin-1"))
        await self.writer.drain()
        if resp.on_upgraded is not None:
            await resp.on_upgraded()
        reader = self.reader
        if raw:
            # put back the raw bytes that arrived with the request head
            reader = _PrefixedReader(raw, self.reader)  # type: ignore[assignment]
        await resp.handler(reader, self.writer)


class _PrefixedReader:
    """A StreamReader look-alike that first yields bytes already read."""

    def __init__(self, prefix: bytes, inner: asyncio.StreamReader) -> None:
        self._prefix = prefix
        self._inner = inner

    async def read(self, n: int = -1) -> bytes:
        if self._prefix:
            data, self._prefix = (self._prefix, b"") if n < 0 or n >= len(self._prefix) \
                else (self._prefix[:n], self._prefix[n:])
            return data
        return await self._inner.read(n)

    def at_eof(self) -> bool:
        return not self._prefix and self._inner.at_eof()


class ApiServer:
    """Serves one Router on any number of listeners (unix, tcp, tcp+tls, fd)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._servers: list[asyncio.base_events.Server] = []
        self._conns: set[asyncio.Task[None]] = set()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            await _Connection(self, reader, writer).run()
        finally:
            self._conns.discard(task)

    async def listen_unix(self, path: str, gid: int | None) -> None:
        if os.path.exists(path) or os.path.islink(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        srv = await asyncio.start_unix_server(self._on_client, path, limit=1 << 20)
        os.chmod(path, 0o660)
        if gid is not None:
            os.chown(path, 0, gid)
        self._servers.append(srv)

    async def listen_tcp(self, host: str, port: int, ssl_ctx: ssl.SSLContext | None) -> None:
        srv = await asyncio.start_server(self._on_client, host, port, ssl=ssl_ctx, limit=1 << 20)
        self._servers.append(srv)

    async def listen_fd(self, fd: int) -> None:
        sock = socket.socket(fileno=fd)
        if sock.family == socket.AF_UNIX:
            srv = await asyncio.start_unix_server(self._on_client, sock=sock, limit=1 << 20)
        else:
            srv = await asyncio.start_server(self._on_client, sock=sock, limit=1 << 20)
        self._servers.append(srv)

    async def stop_accepting(self) -> None:
        """Close the listeners (Server.wait_closed would also wait for every open
        connection, e.g. `docker events`; finish() bounds that instead)."""
        for s in self._servers:
            s.close()

    async def finish(self, timeout: float) -> None:
        """Give in-flight requests `timeout` seconds, then cancel them."""
        if self._conns:
            _, pending = await asyncio.wait(set(self._conns), timeout=timeout)
            for t in pending:
                t.cancel()
