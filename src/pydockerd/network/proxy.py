"""The userland proxy: one process per published port, like docker-proxy.

    python3 -m pydockerd.network.proxy --proto tcp|udp --fd N --container-ip IP
        --container-port P [--host-ip IP --host-port P --container-id ID]

The daemon binds (and for TCP listens on) the host socket and passes it as fd N,
so the port is held from the moment the daemon checked it. The proxy forwards
TCP connections (with half-close) and UDP datagrams (IPv4 or IPv6 on either side:
a [::] binding reaches an IPv4-only container through it) (one upstream socket per
client address, dropped after 90 s idle) to the container until SIGTERM.
Standard library only: it must start fast and not depend on the daemon.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
import time
from typing import cast

UDP_IDLE = 90.0
BUF = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(BUF)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _tcp_client(target: tuple[str, int], creader: asyncio.StreamReader,
                      cwriter: asyncio.StreamWriter) -> None:
    try:
        ureader, uwriter = await asyncio.open_connection(*target)
    except OSError:
        cwriter.transport.abort()
        return
    try:
        await asyncio.gather(_pipe(creader, uwriter), _pipe(ureader, cwriter))
    finally:
        cwriter.close()
        uwriter.close()


async def serve_tcp(sock: socket.socket, target: tuple[str, int]) -> None:
    server = await asyncio.start_server(lambda r, w: _tcp_client(target, r, w), sock=sock)
    async with server:
        await server.serve_forever()


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, front: "_UdpFront", client: tuple[str, int]) -> None:
        self.front, self.client = front, client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.front.reply(data, self.client)


class _UdpFront(asyncio.DatagramProtocol):
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple[str, int], list[object]] = {}   # client -> [transport, last]
        self.pending: dict[tuple[str, int], list[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def reply(self, data: bytes, client: tuple[str, int]) -> None:
        flow = self.flows.get(client)
        if flow is not None:
            flow[1] = time.monotonic()
        if self.transport is not None:
            self.transport.sendto(data, client)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        flow = self.flows.get(addr)
        if flow is not None:
            flow[1] = time.monotonic()
            cast(asyncio.DatagramTransport, flow[0]).sendto(data)
            return
        if addr in self.pending:
            self.pending[addr].append(data)
            return
        self.pending[addr] = [data]
        asyncio.get_running_loop().create_task(self._open(addr))

    async def _open(self, client: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Upstream(self, client), remote_addr=self.target)
        except OSError:
            self.pending.pop(client, None)
            return
        self.flows[client] = [transport, time.monotonic()]
        for data in self.pending.pop(client, []):
            transport.sendto(data)

    async def expire(self) -> None:
        while True:
            await asyncio.sleep(UDP_IDLE / 3)
            now = time.monotonic()
            for client, (transport, last) in list(self.flows.items()):
                if now - cast(float, last) > UDP_IDLE:
                    cast(asyncio.DatagramTransport, transport).close()
                    del self.flows[client]


async def serve_udp(sock: socket.socket, target: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    front = _UdpFront(target)
    await loop.create_datagram_endpoint(lambda: front, sock=sock)
    await front.expire()


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pydockerd.network.proxy")
    p.add_argument("--proto", choices=("tcp", "udp"), required=True)
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--container-ip", required=True)
    p.add_argument("--container-port", type=int, required=True)
    p.add_argument("--host-ip", default="")
    p.add_argument("--host-port", default="")
    p.add_argument("--container-id", default="")
    args = p.parse_args(argv)
    kind = socket.SOCK_STREAM if args.proto == "tcp" else socket.SOCK_DGRAM
    fam = socket.AF_INET6 if ":" in args.host_ip else socket.AF_INET
    sock = socket.socket(fam, kind, fileno=args.fd)
    sock.setblocking(False)
    target = (args.container_ip, args.container_port)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(serve_tcp(sock, target) if args.proto == "tcp"
                                 else serve_udp(sock, target))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sys.exit(asyncio.run(main(sys.argv[1:])))
