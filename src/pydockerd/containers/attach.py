"""Attach sessions: a connection to conmon's attach socket of one container.

The API layer pumps a session to and from the hijacked HTTP connection.
Packets from conmon start with one byte naming the pipe (2 stdout, 3 stderr).
`PendingAttachers` holds the attachers of a container that is not running yet
(`docker run -it`): they connect right before its process starts.
"""
from __future__ import annotations

import asyncio
import os
import socket
from typing import AsyncIterator

from ..errors import SystemError_
from ..runtime.conmon import STDERR_PIPE, STDOUT_PIPE

_PACKET = 32768


class AttachSession:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self.closed = False

    @classmethod
    async def connect(cls, bundle: str) -> "AttachSession":
        # the path may exceed sun_path's 108 bytes: go through /proc/self/fd
        dfd = os.open(bundle, os.O_PATH)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{dfd}/attach")
        except OSError:
            sock.close()
            raise
        finally:
            os.close(dfd)
        return cls(sock)

    async def recv(self) -> tuple[str, bytes] | None:
        """The next chunk of output as ("stdout"|"stderr", data); None at the end."""
        while not self.closed:
            try:
                data = await self._loop.sock_recv(self._sock, _PACKET + 1)
            except OSError:
                return None
            if not data:
                return None
            if len(data) < 2:
                continue
            stream = "stderr" if data[0] == STDERR_PIPE else "stdout"
            if data[0] not in (STDOUT_PIPE, STDERR_PIPE):
                continue
            return stream, data[1:]
        return None

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """recv() until the end, as an async iterator."""
        while (item := await self.recv()) is not None:
            yield item

    async def send(self, data: bytes) -> None:
        for i in range(0, len(data), _PACKET):
            await self._loop.sock_sendall(self._sock, data[i:i + _PACKET])

    def close_stdin(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._sock.close()


class PendingAttachers:
    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[AttachSession]]] = {}

    def wait(self, cid: str) -> asyncio.Future[AttachSession]:
        """A session made when the container next starts."""
        fut: asyncio.Future[AttachSession] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(cid, []).append(fut)
        return fut

    async def connect(self, cid: str, bundle: str) -> None:
        """The container's conmon is up: connect everyone waiting."""
        for fut in self._waiting.pop(cid, []):
            if fut.done():
                continue
            try:
                fut.set_result(await AttachSession.connect(bundle))
            except OSError as e:
                fut.set_exception(SystemError_(f"attach failed: {e}"))

    def fail(self, cid: str, error: str) -> None:
        for fut in self._waiting.pop(cid, []):
            if not fut.done():
                fut.set_exception(SystemError_(error or "container failed to start"))
