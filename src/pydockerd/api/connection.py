"""One client connection: an asyncio.Protocol that parses requests (httptools) as
bytes arrive (api/conninput.py) and serves them one at a time, in order
(keep-alive, pipelining).

A request runs as a Task of the site's owner, started by the callback that
completed it; the handler of an `inline` route starts in that callback and
needs a task only if it has to wait (TaskOwner.spawn_stepped).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from ..errors import DockerError
from ..util.sockets import peer_closed
from ..util.tasks import TaskOwner
from ..util.writeflow import WriteFlow
from . import respond
from .authz import Authorizer
from .errormap import error_response
from .http import Body, HijackResponse, Request, StreamResponse
from .conninput import ConnectionInput
from .httpwire import REFUSALS, Message
from .router import Router
from .targets import Target, Targets
from .version import negotiate

log = logging.getLogger("pydockerd.api")

_DRAIN_AFTER_REFUSAL = (1.0, 16 << 20)     # seconds, bytes read and dropped before close
_HUP_POLL_S = 0.5                          # while a stream waits: has the client gone?
INLINE_BURST = 64                          # pipelined requests served in one callback


@dataclass
class Site:
    """What the connections of one ApiServer share."""

    router: Router
    authz: Authorizer | None
    tasks: TaskOwner                                   # the requests being served
    connections: set["Connection"] = field(default_factory=set)
    closing: bool = False                              # shutting down: no new request
    targets: Targets = field(init=False)               # request target -> route

    def __post_init__(self) -> None:
        self.targets = Targets(self.router)


class Connection(ConnectionInput, asyncio.Protocol):
    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        self.busy = False                        # a request is being served
        self.task: asyncio.Task[None] | None = None     # runs the request that waits
        self._stepping = False                   # an inline route's first step runs
        self.answered = False                    # the current request's status line is out
        self.streaming = False
        self.client_gone = False                 # the client left during a stream
        self.write_flow = WriteFlow()
        self._dropping = -1                      # after a refusal: bytes still dropped
        self._hup: asyncio.TimerHandle | None = None
        self._ssl = False

    # --- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._ssl = transport.get_extra_info("sslcontext") is not None
        if self.site.closing:                 # accepted while the daemon shuts down
            transport.close()
            return
        self.site.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._dropping >= 0:
            self._dropping -= len(data)
            if self._dropping < 0:
                self._close()
            return
        self._parse(data)
        self._wake()
        if not self.busy:
            self._next()
        elif self._backlog():
            self._pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        if self._dropping >= 0:
            self._close()
        elif self.streaming:
            self._watch_hangup()
        elif not self.busy:
            self._next()
        return not self._ssl and self.transport is not None and not self.transport.is_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc if exc is not None else True
        self.eof = True
        self.site.connections.discard(self)
        self._wake()
        self.write_flow.resume()                 # a writer waiting finds the loss
        if self.streaming:
            self._client_left()

    def pause_writing(self) -> None:
        self.write_flow.pause()

    def resume_writing(self) -> None:
        self.write_flow.resume()

    # --- the output side (respond.Out) --------------------------------------------------
    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if not self.lost:
            await self.write_flow.wait()
        if self.lost:
            raise ConnectionResetError("Connection lost")

    # --- serving, one request at a time ----------------------------------------------
    def _next(self) -> None:
        """Serve what is ready; close when the client is done. Inline requests that
        need no task are served in this loop, INLINE_BURST at most: then the rest
        waits for the loop's next turn (other connections and tasks go first)."""
        served = 0
        while not self.busy and self.transport is not None and not self.transport.is_closing():
            msgs = self.parser.messages
            if self.refusal is not None and not (msgs and msgs[0].complete
                                                 and not msgs[0].refused):
                self._refuse(self.refusal)          # after the requests read before it
                return
            if not msgs or not msgs[0].headers_done:
                if self.eof:
                    self._close()
                else:
                    self._resume_reading()
                return
            if self.site.closing:
                self._close()
                return
            if served == INLINE_BURST:
                asyncio.get_running_loop().call_soon(self._next)
                return
            served += 1
            self.busy = True
            self._start(msgs[0])

    def _start(self, msg: Message) -> None:
        """Serve a request: an inline route's handler starts here, in the callback,
        and needs a task only if it waits; any other runs as a task."""
        try:
            target: Target | Exception = self.site.targets.get(msg.method, msg.url)
        except Exception as e:  # noqa: BLE001 - answered by _serve
            target = e
        coro = self._run(msg, target)
        authz = self.site.authz
        if isinstance(target, Target) and target.route.inline and not (authz and authz.names):
            # (an authorization plugin is asked first, over util/httpclient with asyncio.timeout: that needs a task)
            self._stepping = True
            try:
                self.task = self.site.tasks.spawn_stepped(coro, "api request")
            finally:
                self._stepping = False
        else:
            self.task = self.site.tasks.spawn(coro, "api request")

    async def _run(self, msg: Message, target: Target | Exception) -> None:
        keep = False
        try:
            keep = await self._request(msg, target)
        finally:                               # cancelled (shutdown) or failed: closed
            self.task = None
            self._served(keep)
            if not self._stepping:             # else _next's loop goes on
                self._next()

    def _served(self, keep: bool) -> None:
        self.parser.messages.popleft()
        if self._dropping >= 0:               # refused: nothing more until it closes
            return
        self.busy = False
        self.answered = False
        if not keep:
            self._close()
        else:
            self._parse_unparsed()

    def _close(self) -> None:
        self.site.connections.discard(self)
        if self.transport is not None:
            self.transport.close()

    def close(self, idle_only: bool = False) -> None:
        """Close the connection (with idle_only, only if no request is in flight)."""
        if not (idle_only and self.busy):
            self._close()

    def _refuse(self, e: DockerError) -> None:
        """Answer a request that cannot be read (malformed, oversized), then drop
        what the client still sends for a moment, so it reads the answer rather
        than a reset, as Go's server does before closing."""
        self.busy = True                       # nothing more is served
        respond.write_response(self, error_response(e, "refused request"), False, False)
        self._linger()

    def _linger(self) -> None:
        """Close after the answer while the client may still be sending (a refused
        request, a body left unread): its bytes are read and dropped for a moment
        first, so it reads the answer rather than a reset."""
        assert self.transport is not None
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.eof:
            self._close()
            return
        self._dropping = _DRAIN_AFTER_REFUSAL[1]
        self._resume_reading()
        asyncio.get_running_loop().call_later(_DRAIN_AFTER_REFUSAL[0], self._close)

    async def _request(self, msg: Message, target: Target | Exception) -> bool:
        """Serve one request; True: the connection stays open for the next."""
        try:
            return await self._serve(msg, target)
        except ConnectionError:
            return False
        except REFUSALS as e:
            if not self.answered:
                self._refuse(e)
            return False

    async def _serve(self, msg: Message, target: Target | Exception) -> bool:
        upgrade = msg.upgrade
        if upgrade:
            fixed = [await self._upgrade_body(msg)]

            async def pull_fixed() -> bytes:
                return fixed.pop() if fixed else b""
            body = Body(pull_fixed)
        else:
            body = Body(lambda: self.pull_body(msg))
        path = "/"
        try:
            if isinstance(target, Exception):
                raise target
            path, handler = target.path, target.route.handler

            def prepare(body: Body) -> Request:   # after routing: unknown routes are 404
                return Request(msg.method, path, Request.parse_query(target.query),
                               msg.headers, body, negotiate(target.version),
                               params=target.params or {}, upgrade=upgrade)
            authz = self.site.authz
            if authz is not None and authz.names:
                assert self.transport is not None
                check = authz.begin(msg.method, msg.url, msg.headers, respond.COMMON_HEADERS,
                                    self.transport.get_extra_info("ssl_object"))
                resp = await (check.run(body, prepare, handler) if check is not None
                              else handler(prepare(body)))
            else:
                resp = await handler(prepare(body))
        except Exception as e:  # noqa: BLE001 - every failure becomes an answer
            resp = error_response(e, f"{msg.method} {path}")
        if isinstance(resp, HijackResponse):
            log.debug("%s %s -> %s", msg.method, path, respond.hijack_status(resp, upgrade))
            await self._hijack(resp, upgrade)
            return False
        log.debug("%s %s -> %s", msg.method, path, resp.status)
        keep = msg.keep_alive and not upgrade
        head_only = msg.method == "HEAD"
        if isinstance(resp, StreamResponse):
            # a streaming body may consume the request body as it goes (docker load)
            if not await self._stream(resp, head_only, f"{msg.method} {path}"):
                return False
            drained = not keep or await self.discard_body(msg)
        else:
            # what the handler left of the body is dropped first (256 KiB at most,
            # else the answer says Connection: close), as Go's server does
            drained = not keep or (msg.complete and not msg.body) \
                or await self.discard_body(msg)
            respond.write_response(self, resp, keep and drained, head_only)
            if self.write_flow.paused or self.lost is not False:
                await self.drain()
        if not drained:
            self.busy = True                   # nothing more is served
            self._linger()
        return keep and drained

    # --- streams: is the client still there? -------------------------------------------
    async def _stream(self, resp: StreamResponse, head_only: bool, what: str) -> bool:
        """A client that left ends its stream at once (Go cancels the request's context)."""
        if self.lost is not False:            # the client left while the handler worked
            await respond.close_stream(resp.chunks)
            return False
        self.streaming = True
        if self.eof:
            self._watch_hangup()
        try:
            return await respond.write_stream(self, resp, head_only, what)
        except asyncio.CancelledError:
            if not self.client_gone or self.task is None:
                raise
            self.task.uncancel()           # the client left: end this connection quietly
            return False
        finally:
            self.streaming = False
            if self._hup is not None:
                self._hup.cancel()
                self._hup = None

    def _watch_hangup(self) -> None:
        """After EOF: a half-closed client still reads; only a full close ends the
        stream (unix socket: POLLHUP; over TCP the next write finds out)."""
        if self._hup is None and self.transport is not None:
            self._hup = asyncio.get_running_loop().call_later(_HUP_POLL_S, self._check_hangup)

    def _check_hangup(self) -> None:
        self._hup = None
        if not self.streaming or self.transport is None:
            return
        if peer_closed(self.transport):
            self._client_left()
        else:
            self._watch_hangup()

    def _client_left(self) -> None:
        if self.task is not None and not self.client_gone:
            self.client_gone = True
            self.task.cancel()

    # --- hijacking ---------------------------------------------------------------------
    async def _hijack(self, resp: HijackResponse, upgrade: bool) -> None:
        try:
            self.answered = True
            self.write(respond.hijack_head(resp, upgrade))
            await self.drain()
            if resp.on_upgraded is not None:
                await resp.on_upgraded()
            assert self.transport is not None
            if self.lost is not False or (self.eof and peer_closed(self.transport)):
                return          # the client left during the upgrade: nobody to serve
            rest = self.waiting()
            self._read_paused = False
            await resp.handler(*respond.hand_over(self.transport, rest, self.eof,
                                                  self.write_flow.paused))
        finally:
            if resp.on_closed is not None:
                await resp.on_closed()
