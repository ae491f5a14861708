"""Socket facts the asyncio stream API does not expose."""
from __future__ import annotations

import asyncio
import fcntl
import select
import socket
import struct
import termios

_INT = struct.Struct("i")


def unix_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """The AF_UNIX socket under a transport, else None."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    return sock     # type: ignore[no-any-return]


def unix_fd(transport: asyncio.BaseTransport) -> int | None:
    """The fd of a transport over an AF_UNIX stream socket, else None."""
    sock = unix_socket(transport)
    if sock is None or sock.type != socket.SOCK_STREAM:
        return None
    return int(sock.fileno())


def unread_bytes(fd: int) -> int:
    """SIOCOUTQ of a unix stream socket: what its peer has not read yet."""
    out = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0" * _INT.size)   # SIOCOUTQ == TIOCOUTQ
    return int(_INT.unpack(out)[0])


def peer_closed(transport: asyncio.BaseTransport) -> bool:
    """Has the peer of a unix socket closed both directions (POLLHUP)?"""
    if transport.is_closing():
        return True
    sock = unix_socket(transport)
    if sock is None:
        return False
    if sock.fileno() < 0:                       # closed under us: the peer is gone
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLHUP)
    return bool(poller.poll(0))
