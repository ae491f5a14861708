"""A hijacked unix-socket connection's writer that holds its first output until the
client has read the response head.

The Docker SDK for Python (7.x) reads a hijacked stream (attach, exec start) from
the socket under http.client's buffered reader (`response.raw._fp.fp.raw`): bytes
that arrived in the same read as the head sit in that buffer and are lost. Our
exec start writes output a few ms after the head, so a client slow to parse it
(a loaded machine, a GIL switch) lost its first output. On an AF_UNIX stream
socket, SIOCOUTQ counts what the peer has not read yet: while it is above zero
the head is still unread, and the first output waits (writes are buffered here,
the first `drain` polls every `POLL_S`), at most `HOLD_S` after the hand-over so
a client that never reads holds nothing up for long. TCP is not held: there
SIOCOUTQ counts unacknowledged bytes, which says nothing about the reader.
"""
from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from typing import Iterable

HOLD_S = 0.2        # longest wait for the head to be read (a client that never reads)
POLL_S = 0.001      # SIOCOUTQ polling step while the head is unread
_INT = struct.Struct("i")


def unread_bytes(fd: int) -> int:
    """SIOCOUTQ of a unix stream socket: what its peer has not read yet."""
    out = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0" * _INT.size)   # SIOCOUTQ == TIOCOUTQ
    return int(_INT.unpack(out)[0])


def unix_fd(transport: asyncio.BaseTransport) -> int | None:
    """The fd of a transport over an AF_UNIX stream socket, else None."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        return None
    return int(sock.fileno())


class HeadHeldWriter(asyncio.StreamWriter):
    """A StreamWriter whose writes wait, buffered, until the client read the head
    that went out just before it was made (or `HOLD_S` passed): the first `drain`
    waits for that and sends them; `write_eof`/`close` send them at once."""

    def __init__(self, transport: asyncio.WriteTransport, protocol: asyncio.BaseProtocol,
                 reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop,
                 fd: int) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._fd = fd
        self._deadline = loop.time() + HOLD_S
        self._held: list[bytes] | None = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            super().write(data)
        elif data:
            self._held.append(bytes(data))

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        for chunk in data:
            self.write(chunk)

    async def drain(self) -> None:
        if self._held is not None:
            await self._wait_head_read()
            self._release()
        await super().drain()

    def write_eof(self) -> None:
        self._release()
        super().write_eof()

    def close(self) -> None:
        self._release()
        super().close()

    async def _wait_head_read(self) -> None:
        loop = asyncio.get_running_loop()
        while self._held is not None and loop.time() < self._deadline:
            if self.transport.is_closing():
                return
            try:
                # the head still in the transport's buffer is unread too
                if not self.transport.get_write_buffer_size() and \
                        unread_bytes(self._fd) == 0:
                    return
            except OSError:
                return
            await asyncio.sleep(POLL_S)

    def _release(self) -> None:
        held, self._held = self._held, None
        if held and not self.transport.is_closing():
            self.transport.write(b"".join(held))
