"""HTTP/1.1 on asyncio streams + httptools: listeners, keep-alive, chunked
responses, hijacking, and the one error -> status mapping.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from typing import Any

import httptools

from .. import __version__
from ..errors import DockerError
from ..util.sockets import peer_closed
from ..util.tasks import TaskOwner, cancel_and_wait
from .http import Body, HijackResponse, Request, Response, StreamResponse
from .httpwire import BadRequest, HeadersTooLarge, Message, RequestParser, UriTooLong, \
    split_target
from .authz import Authorizer
from .router import Router
from .errormap import error_response, error_status
from .version import API_VERSION, MIN_API_VERSION, negotiate, split_version, version_str

log = logging.getLogger("pydockerd.api")

__all__ = ["API_VERSION", "MIN_API_VERSION", "ApiServer", "error_response", "version_str"]

_REASONS = {100: "Continue", 101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content",
            304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 409: "Conflict", 414: "Request-URI Too Long",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable"}
_REFUSALS = (BadRequest, UriTooLong, HeadersTooLarge)
_DRAIN_AFTER_REFUSAL = (1.0, 16 << 20)     # seconds, bytes read and dropped before close
_HUP_POLL_S = 0.5                          # while a stream waits: has the client gone?


class _Connection:
    def __init__(self, server: "ApiServer", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.parser = RequestParser()
        self.upgrade_rest: bytes | None = None   # raw bytes after an upgrade request's head
        self.eof = False
        self.answered = False                    # the current request's status line is out
        self.client_gone = False                 # EOF from the client during a stream

    async def _feed(self) -> bool:
        """Read more bytes into the parser. False on EOF."""
        if self.eof or self.upgrade_rest is not None:
            return False
        data = await self.reader.read(65536)
        if not data:
            self.eof = True
            return False
        try:
            self.parser.feed(data)
        except httptools.HttpParserUpgrade as e:
            self.upgrade_rest = data[e.args[0]:]
        return True

    async def run(self) -> None:
        try:
            while True:
                while not self.parser.messages or not self.parser.messages[0].headers_done:
                    if not await self._feed():
                        return
                msg = self.parser.messages[0]
                self.answered = False
                keep = await self._serve(msg)
                self.parser.messages.popleft()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except _REFUSALS as e:
            if not self.answered:
                await self._refuse(e)
        finally:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - closing a dead socket
                pass

    async def _refuse(self, e: DockerError) -> None:
        """Answer a request that cannot be read (malformed, oversized), then drop
        what the client still sends for a moment, so it reads the answer rather
        than a reset, as Go's server does before closing."""
        try:
            await self._write_response(error_response(e, "refused request"), False, False)
            if self.writer.can_write_eof():
                self.writer.write_eof()
            deadline = time.monotonic() + _DRAIN_AFTER_REFUSAL[0]
            left = _DRAIN_AFTER_REFUSAL[1]
            while left > 0 and (wait := deadline - time.monotonic()) > 0:
                data = await asyncio.wait_for(self.reader.read(65536), wait)
                if not data:
                    break
                left -= len(data)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass

    async def _pull_body(self, msg: Message) -> bytes:
        while not msg.body:
            if msg.complete:
                return b""
            if not await self._feed():
                # Go's body reader: io.ErrUnexpectedEOF, never a silently short body
                raise BadRequest("request body ended early: unexpected EOF")
        return msg.body.popleft()

    async def _serve(self, msg: Message) -> bool:
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
            if len(rest) < length:
                raise BadRequest("request body ended early: unexpected EOF")
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
        path = "/"
        try:
            path, qs = split_target(msg.url)
            version_text, path = split_version(path)
            handler, params = self.server.router.resolve(msg.method, path)

            def prepare(body: Body) -> Request:   # after routing: unknown routes are 404
                return Request(msg.method, path, Request.parse_query(qs), msg.headers, body,
                               negotiate(version_text), params=params, upgrade=upgrade,
                               initial_raw=raw)
            authz = self.server.authz.begin(msg.method, msg.url, msg.headers,
                                            self._common_headers(), self.writer.get_extra_info(
                                                "ssl_object")) \
                if self.server.authz is not None and self.server.authz.names else None
            resp = await (authz.run(body, prepare, handler) if authz is not None
                          else handler(prepare(body)))
        except Exception as e:  # noqa: BLE001 - every failure becomes an answer
            resp = error_response(e, f"{msg.method} {path}")
        if isinstance(resp, HijackResponse):
            status = resp.head.split(b" ", 2)[1].decode("latin-1", "replace") \
                if resp.head else 101 if upgrade else 200
            log.debug("%s %s -> %s", msg.method, path, status)
            self.answered = True
            await self._hijack(resp, upgrade, raw)
            return False
        log.debug("%s %s -> %s", msg.method, path, resp.status)
        keep = msg.keep_alive and not upgrade
        head_only = msg.method == "HEAD"
        if isinstance(resp, StreamResponse):
            # a streaming body may consume the request body as it goes (docker load)
            if not await self._write_stream(resp, head_only, f"{msg.method} {path}", msg):
                return False
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
        self.answered = True
        self.writer.write(head if head_only or resp.status in (204, 304) else head + resp.body)
        await self.writer.drain()

    async def _watch_client(self, msg: Message, streaming: "asyncio.Task[Any]") -> None:
        """While a response streams, the client closing the connection (EOF once the
        request body is read) means nobody reads any more: stop the stream at once,
        as Go cancels the request's context (an idle `docker events` or `logs -f`
        client that went away would otherwise hold its subscription until the next
        write). Bytes of a pipelined next request are kept for the parser."""
        while await self._feed():
            pass
        # EOF. A client that only half-closed (shutdown(SHUT_WR) after its request)
        # still reads: only a full close ends the stream. On a unix socket the
        # kernel says so with POLLHUP; over TCP the next write finds out.
        while not peer_closed(self.writer):
            await asyncio.sleep(_HUP_POLL_S)
        self.client_gone = True
        streaming.cancel()

    async def _write_stream(self, resp: StreamResponse, head_only: bool, what: str,
                            msg: Message) -> bool:
        """Send a chunked response. The status line waits for the stream's first
        item (an empty one just sends it), so an error raised before that is a
        plain error response, as dockerd answers before its output is flushed.
        An error after it ends the stream in the stream's own format (or cuts
        the connection when the format has none, e.g. a tar). False: close."""
        current = asyncio.current_task()
        watcher = asyncio.ensure_future(self._watch_client(msg, current)) \
            if msg.complete and current is not None and self.upgrade_rest is None else None
        try:
            return await self._stream_chunks(resp, head_only, what)
        except asyncio.CancelledError:
            if not self.client_gone or current is None:
                raise
            current.uncancel()           # the client left: end this connection quietly
            return False
        finally:
            if watcher is not None:
                await cancel_and_wait(watcher)

    async def _stream_chunks(self, resp: StreamResponse, head_only: bool, what: str) -> bool:
        it = resp.chunks
        try:
            first: bytes | None = None
            if not head_only:
                try:
                    first = await it.__anext__()
                except StopAsyncIteration:
                    first = None
                except Exception as e:  # noqa: BLE001 - before the status line
                    await self._write_response(error_response(e, what), True, False)
                    return True
            lines = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}",
                     *self._common_headers(), f"Content-Type: {resp.content_type}",
                     "Transfer-Encoding: chunked"]
            for k, v in resp.headers.items():
                lines.append(f"{k}: {v}")
            self.answered = True
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await self.writer.drain()
            if head_only:
                self.writer.write(b"0\r\n\r\n")
                return True
            chunk = first
            try:
                while chunk is not None:
                    if chunk:
                        self.writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        await self.writer.drain()
                    try:
                        chunk = await it.__anext__()
                    except StopAsyncIteration:
                        chunk = None
            except ConnectionError:
                raise
            except asyncio.CancelledError:
                # the daemon shuts down: end the stream cleanly (`docker events` and
                # `docker logs -f` see its end, not a broken connection)
                if self.client_gone:
                    raise
                try:
                    self.writer.write(b"0\r\n\r\n")
                except Exception:  # noqa: BLE001 - the client is gone already
                    pass
                raise
            except Exception as e:  # noqa: BLE001 - after the status line
                tail = resp.error_chunk(error_status(e, what)[1])
                if tail is None:
                    return False
                self.writer.write(b"%x\r\n%s\r\n" % (len(tail), tail))
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
            return True
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _hijack(self, resp: HijackResponse, upgrade: bool, raw: bytes) -> None:
        try:
            await self._hijacked(resp, upgrade, raw)
        finally:
            if resp.on_closed is not None:
                await resp.on_closed()

    async def _hijacked(self, resp: HijackResponse, upgrade: bool, raw: bytes) -> None:
        if resp.head is not None:
            head = resp.head.decode("latin-1")
        elif upgrade:
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

    def __init__(self, router: Router, authz: Authorizer | None = None) -> None:
        self.router = router
        self.authz = authz                  # authorization plugins (api/authz.py)
        self._servers: list[asyncio.base_events.Server] = []
        # every client connection is a task of this owner: finish() ends them all
        self._conns = TaskOwner("api connections")

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._conns.closed:              # accepted while the daemon shuts down
            writer.close()
            return
        self._conns.spawn(_Connection(self, reader, writer).run(), name="api connection")

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

    async def listen_fd(self, fd: int, ssl_ctx: ssl.SSLContext | None) -> None:
        """Serve a listening socket passed by systemd (TLS on it too, as dockerd does)."""
        sock = socket.socket(fileno=fd)
        if sock.family == socket.AF_UNIX:
            srv = await asyncio.start_unix_server(self._on_client, sock=sock, ssl=ssl_ctx,
                                                  limit=1 << 20)
        else:
            srv = await asyncio.start_server(self._on_client, sock=sock, ssl=ssl_ctx,
                                             limit=1 << 20)
        self._servers.append(srv)

    async def stop_accepting(self) -> None:
        """Close the listeners (Server.wait_closed would also wait for every open
        connection, e.g. `docker events`; finish() bounds that instead)."""
        for s in self._servers:
            s.close()

    async def finish(self, timeout: float) -> None:
        """Give requests in flight `timeout` seconds, then cancel every connection
        still open (streams end cleanly, hijacked ones are closed) and wait for them."""
        await self._conns.close(grace=timeout)
