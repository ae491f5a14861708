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


CA = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swarm-ca")])


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey,
          signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    """As SwarmKit's: CA certificates with a subject key ID and no authority key
    ID (a cross-signed one too), leaves with the authority key ID."""
    now = datetime.now(timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(CA)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False)
    else:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signer.public_key()), critical=False).add_extension(
            x509.SubjectAlternativeName([x509.DNSName("swarm-manager")]), critical=False)
    return b.sign(signer, hashes.SHA256())


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
                                client_context(root, None, None), root)
            wrong = TlsForwarder("127.0.0.1", port, "swarm-manager",
                                 client_context(other_root, None, None), other_root)
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


def test_a_manager_in_a_root_rotation_is_trusted_through_the_cross_signed_root():
    old_key, new_key, mgr_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    old = _cert(CA, old_key, old_key, True)
    cross = _cert(CA, new_key, old_key, True)          # the new root, signed by the old
    leaf = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mgr")]), mgr_key,
                 new_key, False)
    with tempfile.TemporaryDirectory() as d:
        pem = Path(d) / "server.pem"
        pem.write_bytes(leaf.public_bytes(PEM) + cross.public_bytes(PEM) + mgr_key.private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        unrelated = _cert(CA, *(2 * [ec.generate_private_key(ec.SECP256R1())]), True)

        async def main() -> None:
            sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            sctx.load_cert_chain(str(pem))

            async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                w.write(b"echo:" + await r.read(100))
                await w.drain()
                w.close()
            server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=sctx)
            port = server.sockets[0].getsockname()[1]
            root = old.public_bytes(PEM)
            other = unrelated.public_bytes(PEM)
            # OpenSSL alone refuses the chain (it stops at the cross-signed root)
            plain = client_context(root, None, None)
            try:
                await asyncio.open_connection("127.0.0.1", port, ssl=plain,
                                              server_hostname="swarm-manager")
                raise AssertionError("verified without the cross-signed root")
            except ssl.SSLCertVerificationError:
                pass
            fwd = TlsForwarder("127.0.0.1", port, "swarm-manager",
                               client_context(root, None, None), root)
            stranger = TlsForwarder("127.0.0.1", port, "swarm-manager",
                                    client_context(other, None, None), other)
            try:
                assert await _through(fwd, b"ping") == b"echo:ping"
                assert await _through(stranger, b"ping") == b""
                assert "certificate verify failed" in stranger.last_error
            finally:
                await fwd.close()
                await stranger.close()
                server.close()
        asyncio.run(main())
