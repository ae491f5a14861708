"""A hijacked unix-socket connection's writer that holds its first output until the
client has read the response head.

The Docker SDK for Python (7.x) reads a hijacked stream (attach, exec start) from
the socket under http.client's buffered reader (`response.raw._fp.fp.raw`): bytes
that arrived in the same read as the head sit in that buffer and are lost. Our
exec start writes output a few ms after the head, so a client slow to parse it
(a loaded machine, a GIL switch) lost its first output. On an AF_UNIX stream
socket, SIOCOUTQ counts what the peer has not read yet: while it is above zero
the head is still unread, and the first output waits (writes are buffered here,
the socket polled every `POLL_S` from the first one), at most `HOLD_S` after the hand-over so
a client that never reads holds nothing up for long. TCP is not held: there
SIOCOUTQ counts unacknowledged bytes, which says nothing about the reader.
"""
from __future__ import annotations

import asyncio
from typing import Iterable

from ..util.sockets import unread_bytes

HOLD_S = 0.2        # longest wait for the head to be read (a client that never reads)
POLL_S = 0.001      # SIOCOUTQ polling step while the head is unread


class HeadHeldWriter(asyncio.StreamWriter):
    """A StreamWriter whose writes are buffered until the client read the head that
    went out just before it was made, or `HOLD_S` passed: the first write checks the
    socket's queue and, while the head is unread, polls it every `POLL_S` from the
    loop (call_later, no task); `drain` waits for the release, `write_eof`/`close`
    release at once. A write nobody drains (a websocket pong) goes out too."""

    def __init__(self, transport: asyncio.WriteTransport, protocol: asyncio.BaseProtocol,
                 reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop,
                 fd: int) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._fd = fd
        self._loop = loop
        self._deadline = loop.time() + HOLD_S
        self._held: list[bytes] | None = []
        self._timer: asyncio.TimerHandle | None = None
        self._released = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            super().write(data)
        elif data:
            self._held.append(bytes(data))
            if self._timer is None:
                self._poll()

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        for chunk in data:
            self.write(chunk)

    async def drain(self) -> None:
        if self._held:              # some output held: its poll is on
            await self._released.wait()
        await super().drain()

    def write_eof(self) -> None:
        self._release()
        super().write_eof()

    def close(self) -> None:
        self._release()
        super().close()

    def _poll(self) -> None:
        self._timer = None
        if self._held is None:
            return
        if not self.transport.is_closing() and self._loop.time() < self._deadline:
            try:
                # the head still in the transport's buffer is unread too
                unread = self.transport.get_write_buffer_size() or unread_bytes(self._fd)
            except OSError:
                unread = 0
            if unread:
                self._timer = self._loop.call_later(POLL_S, self._poll)
                return
        self._release()

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, None
        try:
            if held and not self.transport.is_closing():
                self.transport.write(b"".join(held))
        finally:
            self._released.set()    # a drain never waits for ever, whatever write did
