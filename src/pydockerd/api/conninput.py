"""The input side of a client connection (api/connection.py): requests parsed one
at a time as bytes arrive, their bodies pulled by the handlers, back-pressure.

The parser is fed the bytes of one request and none after its end: what follows
waits raw in `unparsed` until that request is served (then it is parsed: keep-alive,
pipelining), so a hijacked connection, with or without `Upgrade:`, gets the bytes
the client sent after its request. Reading pauses while more than HIGH_WATER
bytes wait (a `docker load` body is read as the handler uses it).
"""
from __future__ import annotations

import asyncio

import httptools

from ..errors import DockerError
from .httpwire import REFUSALS, BadRequest, Message, RequestParser

HIGH_WATER = 2 << 20              # bytes waiting (body, raw, unparsed): reading pauses
MAX_BODY_DRAIN = 256 << 10        # unread body bytes read and dropped after an answer (Go's)


class ConnectionInput:
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser()
        self.raw: bytearray | None = None        # bytes after an upgrade request's head
        self.unparsed = bytearray()              # bytes after the first complete request,
        self._upos = 0                           # from this offset
        self.refusal: DockerError | None = None  # the input cannot be read further
        self.eof = False
        self.lost: Exception | None | bool = False
        self._waiter: asyncio.Future[None] | None = None      # data wanted
        self._read_paused = False

    def _parse(self, data: bytes) -> None:
        """Bytes that came in."""
        if self.raw is not None:
            self.raw += data
        elif self.refusal is None:
            if self._upos < len(self.unparsed):   # behind a request that waits
                self.unparsed += data
                return
            pos = self._feed(data, 0)
            if pos < len(data):
                self.unparsed = bytearray(data[pos:])
                self._upos = 0

    def _parse_unparsed(self) -> None:
        """The bytes that waited behind the request just served (each is copied
        once, however many requests wait there)."""
        if self._upos < len(self.unparsed):
            self._upos = self._feed(self.unparsed, self._upos)
        if self._upos >= len(self.unparsed):
            self.unparsed, self._upos = bytearray(), 0
        elif self._upos > 1 << 16 and self._upos * 2 > len(self.unparsed):
            self.unparsed, self._upos = self.unparsed[self._upos:], 0

    def _feed(self, buf: bytes | bytearray, pos: int) -> int:
        """Parse buf from pos up to the end of the first complete request; returns
        where parsing stopped (everything, after an upgrade's head or a refusal)."""
        while pos < len(buf):
            msgs = self.parser.messages
            if msgs and msgs[-1].complete:    # parsed when that request has been served
                return pos
            try:
                pos += self.parser.feed_message(buf, pos)
            except httptools.HttpParserUpgrade as e:
                self.raw = bytearray(buf[pos + e.args[0]:])
                return len(buf)
            except REFUSALS as e:
                self.refusal = e
                return len(buf)
        return pos

    def waiting(self) -> bytes:
        """The bytes after the request (a hijack's start), taken."""
        rest = bytes(self.raw or b"") + bytes(self.unparsed[self._upos:])
        self.raw, self.unparsed, self._upos = bytearray(), bytearray(), 0
        return rest

    def _backlog(self) -> bool:
        waiting = self.parser.queued_body + len(self.unparsed) - self._upos \
            + len(self.raw or b"")
        return waiting > HIGH_WATER

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport and not self.transport.is_closing():
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self._backlog():
            self._read_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more(self) -> None:
        """Wait for more bytes (or EOF)."""
        if self.eof:
            return
        self._resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def pull_body(self, msg: Message) -> bytes:
        """The next piece of the request body; b"" at its end."""
        while not msg.body:
            if msg.complete:
                return b""
            if self.refusal is not None:
                raise self.refusal
            if self.eof:
                if isinstance(self.lost, Exception):
                    raise ConnectionResetError(str(self.lost))
                # Go's body reader: io.ErrUnexpectedEOF, never a silently short body
                raise BadRequest("request body ended early: unexpected EOF")
            await self._more()
        chunk = self.parser.take_body(msg)
        self._resume_reading()
        return chunk

    async def discard_body(self, msg: Message) -> bool:
        """Before the answer, read and drop what the handler left of the body, as
        Go's server does: False (the connection closes after the answer) when more
        than MAX_BODY_DRAIN bytes are left, the client waits for a 100 Continue that
        never came, or the body cannot be read."""
        if not msg.complete:
            if "100-continue" in msg.headers.get("expect", "").lower():
                return False
            if msg.body_length >= 0:
                unread = msg.body_length - msg.body_seen + sum(map(len, msg.body))
                if unread >= MAX_BODY_DRAIN:
                    return False
        left = MAX_BODY_DRAIN
        try:
            while True:
                chunk = await self.pull_body(msg)
                if not chunk:
                    return True
                left -= len(chunk)
                if left < 0 and not msg.complete:
                    return False
        except (ConnectionError, *REFUSALS):
            return False

    async def _upgrade_body(self, msg: Message) -> bytes:
        """httptools stops at the head of an upgrade request: its body comes raw."""
        length = int(msg.headers.get("content-length", "0") or 0)
        while self.raw is not None and len(self.raw) < length and not self.eof:
            await self._more()
        if self.raw is None or len(self.raw) < length:
            raise BadRequest("request body ended early: unexpected EOF")
        body = bytes(self.raw[:length])
        del self.raw[:length]
        return body
