"""The one gRPC call made before anything is trusted: CA.GetRootCACertificate
over TLS without verification (the answer is checked against the join token's
digest afterwards). grpcio cannot skip server verification, so this unary call
is made by hand over HTTP/2 (h2): HEADERS, one length-prefixed DATA frame, and
the grpc-status trailer."""
from __future__ import annotations

import asyncio
import ssl
import struct

import h2.config
import h2.connection
import h2.events

from ..util.tlsdefer import ensure_ssl
from .proto import swarmkit_pb2 as pb

PATH = "/docker.swarmkit.v1.CA/GetRootCACertificate"


class BootstrapError(Exception):
    """The manager could not be reached or did not answer the CA call."""


def _unverified_context() -> ssl.SSLContext:
    ensure_ssl()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def get_root_ca(host: str, port: int, timeout: float = 10) -> bytes:
    """The root CA bundle (PEM) the manager at host:port serves, unverified."""
    try:
        return await asyncio.wait_for(_call(host, port), timeout)
    except (OSError, asyncio.TimeoutError, ValueError) as e:     # ssl.SSLError is an OSError
        raise BootstrapError(f"cannot reach the manager at {host}:{port}: "
                             f"{e or type(e).__name__}") from e


async def _call(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port, ssl=_unverified_context(),
                                                   server_hostname="swarm-ca")
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        body = pb.GetRootCACertificateRequest().SerializeToString()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"),
                                (":path", PATH), (":authority", f"{host}:{port}"),
                                ("content-type", "application/grpc"), ("te", "trailers")])
        conn.send_data(sid, struct.pack(">BI", 0, len(body)) + body, end_stream=True)
        writer.write(conn.data_to_send())
        data, status, message = b"", "", ""
        ended = False
        while not ended:
            chunk = await reader.read(65536)
            if not chunk:
                raise BootstrapError("the manager closed the connection")
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.DataReceived):
                    data += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    for k, v in ev.headers:
                        key = k.decode() if isinstance(k, bytes) else k
                        val = v.decode() if isinstance(v, bytes) else v
                        if key == "grpc-status":
                            status = val
                        elif key == "grpc-message":
                            message = val
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            writer.write(conn.data_to_send())
    finally:
        writer.close()
    if status != "0" or len(data) < 5:
        raise BootstrapError(f"the manager's CA refused the root certificate call: "
                             f"grpc-status {status or '?'} {message}")
    (length,) = struct.unpack(">I", data[1:5])
    resp = pb.GetRootCACertificateResponse.FromString(data[5:5 + length])
    return bytes(resp.certificate)
