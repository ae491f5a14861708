"""distribution/client reads at most SMALL_BODY of a ping, token or error response:
a registry or token server sending an endless body cannot fill the daemon's memory.
A raw asyncio server on 127.0.0.1; no root, no daemon."""
from __future__ import annotations

import asyncio
import ssl

import pytest

from pydockerd.distribution.auth import AuthConfig
from pydockerd.distribution.client import RegistryError, RegistrySession, registry_error
from pydockerd.distribution.endpoints import Endpoint


def test_ping_token_and_error_bodies_are_read_to_a_limit() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path = (await reader.readuntil(b"\r\n\r\n")).decode().split(" ", 2)[1]
            status, extra = {"/v2/": (b"401 Unauthorized", b'WWW-Authenticate: Bearer realm='
                                      b'"http://%b/token",service="t"\r\n' % host.encode()),
                             "/v2/x/manifests/y": (b"404 Not Found", b"")}.get(
                                 path.split("?")[0], (b"200 OK", b""))
            writer.write(b"HTTP/1.1 %b\r\n%bTransfer-Encoding: chunked\r\n\r\n" % (status, extra))
            for _ in range(32):                          # 32 MiB, then silence
                writer.write(b"100000\r\n" + b"{" * (1 << 20) + b"\r\n")
                await writer.drain()
            await asyncio.sleep(30)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        nonlocal host
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        host = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            async with asyncio.timeout(10), RegistrySession(
                    Endpoint(f"http://{host}", host, ssl.create_default_context()), AuthConfig(), ["s"]) as session:
                await session.ping()
                assert session.challenges and session.challenges[0].scheme == "bearer"
                with pytest.raises(RegistryError, match="invalid token response"):
                    await session.fetch_token(["s"])
                async with await session.http.get(session.endpoint.url("/v2/x/manifests/y")) \
                        as resp:
                    err = await registry_error(resp)
                assert (err.status, err.message) == (404, "not found")
        finally:
            server.close()
    host = ""
    asyncio.run(main())
