"""The embedded DNS server of user-defined networks (Docker's 127.0.0.11).

Like dockerd, the daemon opens the server's sockets *inside* each container's
network namespace (a short-lived thread setns()es into the sandbox, binds
127.0.0.11:53 UDP and TCP, and returns), then serves them from its own event
loop. No iptables rule and no port on the host are needed, the server sees
which container asks (one socket pair per sandbox), and a host resolver
already listening on port 53 cannot clash with it. The sockets die with the
daemon; `serve()` is called again for every running container at start-up
(live restore).

Names of containers are answered from `lookup`; anything else is forwarded
to the asking container's external servers (`upstreams(cid)`: its `--dns`, else
the daemon's `--dns`, else the host's resolv.conf without 127.x servers), or
answered SERVFAIL when there are none.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, cast

from ..util.tasks import TaskOwner
from . import dns, files

log = logging.getLogger("pydockerd.dns")

RESOLVER_IP = "127.0.0.11"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
FORWARD_TIMEOUT = 3.0

# (container id, name) -> addresses, or None when the name is not a container's
Lookup = Callable[[str, str], "list[str] | None"]
# (container id, IPv4 or IPv6 address) -> names for PTR, or None
ReverseLookup = Callable[[str, str], "list[str] | None"]


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _bind_in_netns(netns: str) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on 127.0.0.11:53 inside netns (call in a throwaway thread)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((RESOLVER_IP, 53))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((RESOLVER_IP, 53))
                tcp.listen(64)
            except BaseException:
                udp.close()
                tcp.close()
                raise
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


async def bind_in_netns(netns: str) -> tuple[socket.socket, socket.socket]:
    """Run _bind_in_netns in a dedicated thread, so no pooled thread is ever left in
    another namespace (the thread ends right after)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[tuple[socket.socket, socket.socket]] = loop.create_future()

    def work() -> None:
        try:
            res = _bind_in_netns(netns)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(_settle, fut, None, e)
        else:
            loop.call_soon_threadsafe(_settle, fut, res, None)
    threading.Thread(target=work, name="dns-bind", daemon=True).start()
    return await fut


def _settle(fut: "asyncio.Future[tuple[socket.socket, socket.socket]]",
            res: tuple[socket.socket, socket.socket] | None, err: BaseException | None) -> None:
    if fut.done():
        if res is not None:
            for sock in res:
                sock.close()
    elif err is not None:
        fut.set_exception(err)
    elif res is not None:
        fut.set_result(res)


def upstream_servers(path: str | None = None) -> list[str]:
    """The host's IPv4 nameservers, without loopback ones (not reachable for us as a
    forwarder in general, and never what a container should see)."""
    try:
        with open(path or files.host_resolv_conf_path()) as f:
            ns, _, _, _ = files.parse_resolv_conf(f.read())
    except OSError:
        return []
    return [n for n in ns if ":" not in n and not n.startswith("127.")]


class _Forwarder(asyncio.DatagramProtocol):
    def __init__(self, fut: asyncio.Future[bytes], qid: int) -> None:
        self.fut, self.qid = fut, qid

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) >= 2 and struct.unpack_from("!H", data)[0] == self.qid \
                and not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class _UDPServer(asyncio.DatagramProtocol):
    def __init__(self, resolver: "EmbeddedDNS", cid: str) -> None:
        self.resolver, self.cid = resolver, cid
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.resolver.spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = await self.resolver.answer(self.cid, data)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


@dataclass
class _Served:
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server
    netns: str


@dataclass
class EmbeddedDNS:
    lookup: Lookup
    reverse: ReverseLookup
    upstreams: Callable[[str], list[str]] = lambda cid: upstream_servers()
    _served: dict[str, _Served] = field(default_factory=dict)
    # queries being answered and TCP clients: close() cancels and awaits them
    _tasks: TaskOwner = field(default_factory=lambda: TaskOwner("embedded DNS"))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._tasks.closed:              # a datagram that raced close()
            coro.close()
            return
        self._tasks.spawn(coro, name="dns query")

    def serving(self, cid: str) -> bool:
        return cid in self._served

    async def serve(self, cid: str, netns: str) -> None:
        """Listen on 127.0.0.11:53 in the container's namespace (idempotent)."""
        if cid in self._served:
            return
        udp_sock, tcp_sock = await bind_in_netns(netns)
        loop = asyncio.get_running_loop()
        try:
            udp, _ = await loop.create_datagram_endpoint(lambda: _UDPServer(self, cid),
                                                         sock=udp_sock)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            raise
        try:
            tcp = await asyncio.start_server(
                lambda r, w: self._on_tcp_client(cid, r, w), sock=tcp_sock)
        except BaseException:
            udp.close()
            tcp_sock.close()
            raise
        self._served[cid] = _Served(udp, tcp, netns)
        log.debug("embedded DNS for %s listening in %s", cid[:12], netns)

    async def stop_serving(self, cid: str) -> None:
        s = self._served.pop(cid, None)
        if s is None:
            return
        s.udp.close()
        s.tcp.close()

    async def close(self) -> None:
        """Daemon shutdown: close every listener, then cancel and await the queries
        and TCP clients still being served."""
        for cid in list(self._served):
            await self.stop_serving(cid)
        await self._tasks.close()

    def _on_tcp_client(self, cid: str, r: asyncio.StreamReader,
                       w: asyncio.StreamWriter) -> None:
        if self._tasks.closed:
            w.close()
        else:
            self.spawn(self._tcp_client(cid, r, w))

    async def _tcp_client(self, cid: str, r: asyncio.StreamReader,
                          w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(r.readexactly(2), 10)
                msg = await r.readexactly(struct.unpack("!H", head)[0])
                reply = await self.answer(cid, msg)
                if reply is None:
                    break
                w.write(struct.pack("!H", len(reply)) + reply)
                await w.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            w.close()

    async def answer(self, cid: str, msg: bytes) -> bytes | None:
        try:
            q = dns.parse_query(msg)
        except dns.DNSFormatError:
            return dns.error_reply(msg, dns.RCODE_FORMERR)
        if q.opcode != 0:
            return dns.answer_empty(q, dns.RCODE_NOTIMP)
        qn = q.question
        if qn.qclass == dns.CLASS_IN and qn.qtype in (dns.TYPE_A, dns.TYPE_AAAA):
            addrs = self.lookup(cid, qn.name)
            if addrs is not None:
                # the addresses of the asked family; a known name without an IPv6
                # address has no AAAA: NODATA, as dockerd answers
                return dns.answer_a(q, addrs)
        if qn.qclass == dns.CLASS_IN and qn.qtype == dns.TYPE_PTR:
            ip = dns.ptr_address(qn.name)
            names = self.reverse(cid, ip) if ip is not None else None
            if names:
                return dns.answer_ptr(q, names)
        return await self._forward(cid, q, msg)

    async def _forward(self, cid: str, q: dns.Query, msg: bytes) -> bytes:
        servers = self.upstreams(cid)
        if not servers or not q.recursion_desired:
            return dns.answer_empty(q, dns.RCODE_SERVFAIL)
        loop = asyncio.get_running_loop()
        for server in servers:
            fut: asyncio.Future[bytes] = loop.create_future()
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Forwarder(fut, q.id), remote_addr=(server, 53))
            except OSError:
                continue
            try:
                transport.sendto(msg)
                return await asyncio.wait_for(fut, FORWARD_TIMEOUT)
            except (asyncio.TimeoutError, OSError):
                continue
            finally:
                transport.close()
        return dns.answer_empty(q, dns.RCODE_SERVFAIL)
