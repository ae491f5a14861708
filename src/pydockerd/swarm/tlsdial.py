"""TLS to the managers made by Python's ssl, not by grpcio: gRPC runs over a
local, unencrypted socket that this module forwards to the manager over TLS.

Why: a SwarmKit manager whose own certificate was renewed (every few weeks,
and at once in a `docker swarm ca --rotate`) stops offering ALPN `h2` (its
MutableTLSCreds replaces the TLS config without NextProtos), and grpcio's TLS
refuses such a server ("missing selected ALPN property"), with no switch to
allow it; Go clients, Moby's workers, do not check. The local side is an
abstract Unix socket (no file) that takes connections from this process only
(SO_PEERCRED), so no other local process rides on the node's identity.

During a root rotation a manager presents a certificate of the new CA with the
new root cross-signed by the old one; OpenSSL stops at that cross-signed
certificate (its subject is its issuer's and it has no authority key ID, so it
looks self-signed) and refuses the chain, where Go follows it to the old root.
When verification fails, the manager's chain is read once without verifying,
and the certificates in it that a trusted root signed are trusted too (what
trusting the old root means; certs.trust_bundle does the same with ours)."""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import ssl
import struct
import sys

from ..util.tlsdefer import ensure_ssl

log = logging.getLogger("pydockerd.swarm")

CONNECT_TIMEOUT = 10.0


def client_context(root_ca: bytes, key: bytes | None, cert: bytes | None) -> ssl.SSLContext:
    """TLS 1.2+ verifying the manager against `root_ca`, offering h2, with our
    certificate when given (ssl loads keys from files only: an anonymous memfd)."""
    ensure_ssl()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=root_ca.decode())
    ctx.set_alpn_protocols(["h2"])
    if key is not None and cert is not None:
        fd = os.memfd_create("swarm-node", os.MFD_CLOEXEC)
        try:
            os.write(fd, cert + b"\n" + key)
            path = f"/proc/self/fd/{fd}"
            ctx.load_cert_chain(path, path)
        finally:
            os.close(fd)
    return ctx


class TlsForwarder:
    """Listens on an abstract Unix socket; each connection is piped to a new TLS
    connection to `host:port` (server name `server_name`)."""

    def __init__(self, host: str, port: int, server_name: str, ctx: ssl.SSLContext,
                 root_ca: bytes) -> None:
        self.host, self.port, self.server_name, self.ctx = host, port, server_name, ctx
        self.root_ca = root_ca
        self.name = f"pydockerd-swarm-{os.getpid()}-{secrets.token_hex(8)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind("\0" + self.name)
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.last_error = ""
        self._server: asyncio.AbstractServer | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._starting = asyncio.get_running_loop().create_task(self._start())

    @property
    def target(self) -> str:
        return f"unix-abstract:{self.name}"

    async def _start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, sock=self.sock)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                        struct.calcsize("3i")))
        if pid != os.getpid():
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            try:
                up_r, up_w = await self._dial()
            except (OSError, asyncio.TimeoutError) as e:
                self.last_error = str(e) or type(e).__name__
                log.warning("swarm: TLS to %s:%d: %s", self.host, self.port, self.last_error)
                writer.close()
                return
            try:
                await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
            finally:
                up_w.close()
                writer.close()
        except asyncio.CancelledError:
            pass        # closed by close(): ending quietly (asyncio logs a cancelled handler)
        finally:
            self._pipes.discard(task)

    async def _open(self, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader,
                                                         asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(
            self.host, self.port, ssl=ctx, server_hostname=self.server_name), CONNECT_TIMEOUT)

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await self._open(self.ctx)
        except ssl.SSLCertVerificationError:
            if not await self._trust_cross_signed():
                raise
        return await self._open(self.ctx)

    async def _trust_cross_signed(self) -> bool:
        """Trust the certificates of the manager's chain that a trusted root
        signed; False when there are none (the chain stays refused)."""
        from .certs import trust_bundle
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        _, writer = await self._open(probe)
        try:
            chain = _unverified_chain(writer.get_extra_info("ssl_object"))
        finally:
            writer.close()
        bundle = trust_bundle(b"".join(chain), self.root_ca)
        if bundle == self.root_ca:
            return False
        log.info("swarm: trusting the manager's cross-signed CA certificate (root rotation)")
        self.ctx.load_verify_locations(cadata=bundle[len(self.root_ca):].decode())
        return True

    async def close(self) -> None:
        self._starting.cancel()
        await asyncio.gather(self._starting, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        self.sock.close()
        for t in list(self._pipes):
            t.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


def _unverified_chain(obj: ssl.SSLObject) -> list[bytes]:
    """The peer's certificate chain as sent (PEM): public from Python 3.13, the
    same method of the underlying _ssl object before."""
    if sys.version_info >= (3, 13):
        return [ssl.DER_cert_to_PEM_cert(der).encode()
                for der in obj.get_unverified_chain()]
    return [c.public_bytes(ssl._ssl.ENCODING_PEM).encode()     # type: ignore[attr-defined]
            for c in obj._sslobj.get_unverified_chain()]     # type: ignore[attr-defined]


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        if dst.can_write_eof():
            try:
                dst.write_eof()
            except OSError:
                pass
        else:
            dst.close()
