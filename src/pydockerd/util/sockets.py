"""Socket facts the asyncio stream API does not expose."""
from __future__ import annotations

import asyncio
import select
import socket


def peer_closed(transport: asyncio.BaseTransport) -> bool:
    """Has the peer of a unix socket closed both directions (POLLHUP)?"""
    if transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return False
    if sock.fileno() < 0:                       # closed under us: the peer is gone
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLHUP)
    return bool(poller.poll(0))
