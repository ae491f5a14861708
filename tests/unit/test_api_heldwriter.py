"""api/heldwriter: a hijacked unix-socket stream's first output waits until the
client has read the response head (SIOCOUTQ), at most HOLD_S."""
from __future__ import annotations

import asyncio
import socket
import time

from pydockerd.api import heldwriter
from pydockerd.util.sockets import unix_fd, unread_bytes
from pydockerd.api.respond import hand_over


def test_unread_bytes_counts_what_the_peer_has_not_read() -> None:
    a, b = socket.socketpair()
    try:
        assert unread_bytes(a.fileno()) == 0
        a.send(b"HTTP/1.1 101 UPGRADED\r\n\r\n")
        assert unread_bytes(a.fileno()) > 0
        b.recv(100)
        assert unread_bytes(a.fileno()) == 0
    finally:
        a.close()
        b.close()


async def _serve(server: socket.socket) -> float:
    """Write a head, hand the connection over, write output and drain: how long the
    drain took."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, server)
    assert unix_fd(transport) is not None
    transport.write(b"HEAD\r\n\r\n")
    _, writer = hand_over(transport, b"", False, False)
    start = loop.time()
    writer.write(b"out")
    await writer.drain()
    took = loop.time() - start
    writer.close()
    return took


def _run(client_reads_after: float | None) -> tuple[float, list[bytes]]:
    """The client (a thread) reads after `client_reads_after` s (None: never)."""
    server, client = socket.socketpair()
    got: list[bytes] = []

    def reader() -> None:
        if client_reads_after is None:
            return
        time.sleep(client_reads_after)
        got.append(client.recv(100))        # the head alone: the output was held
        got.append(client.recv(100))

    async def main() -> float:
        t = asyncio.get_running_loop().run_in_executor(None, reader)
        took = await _serve(server)
        await t
        return took

    try:
        return asyncio.run(main()), got
    finally:
        client.close()


def test_output_waits_for_the_head_to_be_read() -> None:
    took, got = _run(0.05)
    assert got == [b"HEAD\r\n\r\n", b"out"]
    assert 0.02 < took < heldwriter.HOLD_S + 0.1   # loose: a loaded 2-core machine


def test_a_client_that_never_reads_holds_output_for_hold_s_only() -> None:
    took, _ = _run(None)
    assert heldwriter.HOLD_S - 0.01 < took < heldwriter.HOLD_S + 0.2


def test_a_write_nobody_drains_goes_out_when_the_head_is_read() -> None:
    """A websocket pong is written without a drain: it must not wait for one."""
    server, client = socket.socketpair()
    client.settimeout(2)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, server)
        transport.write(b"HEAD")
        _, writer = hand_over(transport, b"", False, False)
        await writer.drain()                # nothing held: returns at once
        writer.write(b"pong")
        await asyncio.sleep(0.02)
        assert await loop.run_in_executor(None, client.recv, 100) == b"HEAD"
        got = await loop.run_in_executor(None, client.recv, 100)
        writer.close()
        return got

    try:
        assert asyncio.run(main()) == b"pong"
    finally:
        client.close()


def test_tcp_is_not_held() -> None:
    async def main() -> None:
        srv = socket.create_server(("127.0.0.1", 0))
        cl = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
            asyncio.Protocol, conn)
        assert unix_fd(transport) is None
        _, writer = hand_over(transport, b"", False, False)
        assert type(writer) is asyncio.StreamWriter
        writer.close()
        cl.close()
        srv.close()
    asyncio.run(main())
