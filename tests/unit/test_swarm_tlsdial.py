"""tlsdial.py: gRPC's local connections are forwarded to a manager over TLS made
by Python's ssl, which accepts a server that negotiates no ALPN (a SwarmKit
manager after its own certificate was renewed) and verifies it against the
swarm's root (no root, no daemon, no manager)."""
from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pydockerd.swarm.tlsdial import TlsForwarder, client_context

PEM = serialization.Encoding.PEM


def _ca_and_server(tmp: Path) -> tuple[bytes, Path]:
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swarm-ca")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mgr")]))
            .issuer_name(name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("swarm-manager")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = tmp / "server.pem"
    pem.write_bytes(leaf.public_bytes(PEM) + key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca.public_bytes(PEM), pem


async def _through(forwarder: TlsForwarder, data: bytes) -> bytes:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\0" + forwarder.name)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    writer.write(data)
    got = await asyncio.wait_for(reader.read(), 10)      # until the server closes
    writer.close()
    return got


def test_forwards_to_a_server_without_alpn_and_verifies_it():
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as other:
        root, server_pem = _ca_and_server(Path(d))
        other_root, _ = _ca_and_server(Path(other))

        async def main() -> None:
            sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)     # no ALPN offered
            sctx.load_cert_chain(str(server_pem))

            async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                w.write(b"echo:" + await r.read(100))
                await w.drain()
                w.close()
            server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=sctx)
            port = server.sockets[0].getsockname()[1]
            good = TlsForwarder("127.0.0.1", port, "swarm-manager",
                                client_context(root, None, None))
            wrong = TlsForwarder("127.0.0.1", port, "swarm-manager",
                                 client_context(other_root, None, None))
            try:
                assert good.target == f"unix-abstract:{good.name}"
                assert await _through(good, b"ping") == b"echo:ping"
                # a manager the root does not vouch for gets nothing
                assert await _through(wrong, b"ping") == b""
                assert "certificate verify failed" in wrong.last_error
            finally:
                await good.close()
                await wrong.close()
                server.close()
        asyncio.run(main())
