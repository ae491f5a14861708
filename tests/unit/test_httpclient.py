"""util/httpclient against a local asyncio server (tests/unit/httpserver.py): body
framings, keep-alive reuse and the retry of a connection that died idle, redirects,
timeouts, truncation, unix sockets, streamed uploads. No root, no daemon."""
from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest

from pydockerd.util.httpclient import (ConnectError, HTTPClient, HTTPError, InvalidURL,
                                       PayloadError, ResponseTimeout, ServerDisconnected,
                                       Timeouts, basic_auth)
from tests.unit.httpserver import Request, Server, json_response, response


def run(handler: Callable[[Request], Awaitable[bytes | None]],
        body: Callable[[Server, HTTPClient], Awaitable[None]], unix: str = "",
        timeouts: Timeouts = Timeouts(read=5)) -> Server:
    async def main() -> Server:
        server = await Server(handler).start(unix)
        client = HTTPClient(timeouts=timeouts, unix_path=unix)
        try:
            await body(server, client)
        finally:
            await client.close()
            await server.close()
        return server
    return asyncio.run(main())


def test_content_length_chunked_and_close_delimited_bodies_and_keep_alive() -> None:
    async def handler(req: Request) -> bytes | None:
        if req.method == "HEAD":                         # the length, no body
            return response(200, b"x" * 100_000).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        if req.path == "/cl":
            return response(200, b"x" * 100_000, {"X-Multi": "a", "x-multi": "b"})
        if req.path == "/chunked":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"

    async def body(server: Server, client: HTTPClient) -> None:
        async with await client.get(server.url + "/cl") as r:
            assert r.status == 200 and r.reason == "OK" and r.content_length == 100_000
            assert r.headers.getall("X-MULTI") == ["a", "b"] and r.headers["x-multi"] == "a"
            assert await r.read() == b"x" * 100_000
        async with await client.request("HEAD", server.url + "/cl") as r:
            assert r.content_length == 100_000 and await r.read() == b""
        async with await client.get(server.url + "/chunked") as r:
            assert r.content_length is None
            assert b"".join([c async for c in r.iter_chunks(3)]) == b"hello world"
        async with await client.get(server.url + "/cl") as r:
            assert len(await r.read(10)) == 10          # not all read: not reused
        async with await client.get(server.url + "/close") as r:
            assert await r.read() == b"until the end"
        async with await client.get(server.url + "/cl") as r:
            await r.read()
    server = run(handler, body)
    # /cl, HEAD, /chunked, /cl on one connection; the partly read /cl closed it; /close
    assert [r.conn for r in server.requests] == [0, 0, 0, 0, 1, 2]


def test_a_connection_that_died_idle_is_retried_once_for_idempotent_requests() -> None:
    async def handler(req: Request) -> bytes | None:
        if req.conn == 0 and req.index == 1:
            return None                                  # closes as the request arrives
        return response(200, req.method.encode())

    async def body(server: Server, client: HTTPClient) -> None:
        for method in ("GET", "GET"):
            async with await client.request(method, server.url + "/") as r:
                assert await r.read() == b"GET"
        assert server.connections == 2                   # retried on a new one
        async with await client.request("POST", server.url + "/", data=b"x") as r:
            await r.read()

    server = run(handler, body)
    assert [(r.method, r.conn) for r in server.requests] == [
        ("GET", 0), ("GET", 0), ("GET", 1), ("POST", 1)]

    async def post_not_retried(server: Server, client: HTTPClient) -> None:
        async with await client.request("POST", server.url + "/") as r:
            await r.read()
        with pytest.raises(ServerDisconnected):
            await client.request("POST", server.url + "/", data=b"x")
    run(handler, post_not_retried)


def test_redirects_drop_authorization_across_origins() -> None:
    async def handler(req: Request) -> bytes | None:
        host = req.headers["host"]
        if req.path == "/a":
            return response(307, headers={"Location": "/b"})
        if req.path == "/b":
            other = host.replace("127.0.0.1", "localhost")
            return response(302, headers={"Location": f"http://{other}/c"})
        if req.path == "/post":
            return response(303, headers={"Location": "/c"})
        return json_response({"auth": req.headers.get("authorization", ""),
                              "method": req.method, "host": host})

    async def body(server: Server, client: HTTPClient) -> None:
        auth = {"Authorization": basic_auth("u", "p")}
        r = await client.get(server.url + "/a", headers=auth)
        assert r.status == 307 and r.headers["Location"] == "/b"
        r.release()
        r = await client.get(server.url + "/a", headers=auth, allow_redirects=True)
        doc = await r.json()
        assert doc["auth"] == "" and doc["host"].startswith("localhost:")
        assert r.url.startswith("http://localhost:")
        r = await client.request("POST", server.url + "/post", data=b"x", headers=auth,
                                 allow_redirects=True)
        assert await r.json() == {"auth": "Basic dTpw", "method": "GET",
                                  "host": f"127.0.0.1:{server.port}"}
    server = run(handler, body)
    assert [r.path for r in server.requests] == ["/a", "/a", "/b", "/c", "/post", "/c"]
    assert server.requests[2].headers["authorization"] == "Basic dTpw"   # same origin


def test_a_silent_server_times_out_and_a_cut_body_is_an_error() -> None:
    async def handler(req: Request) -> bytes | None:
        if req.path == "/silent":
            await asyncio.sleep(30)
        if req.path == "/stall":
            return response(200, b"0123456789")[:-7]      # 3 of 10 bytes, then nothing
        return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n012"

    async def body(server: Server, client: HTTPClient) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ResponseTimeout) as e:
            await client.get(server.url + "/silent")
        assert e.value.stage == "headers" and loop.time() - start < 5
        async with await client.get(server.url + "/stall") as r:
            assert await r.read_chunk() == b"012"
            with pytest.raises(ResponseTimeout) as e:
                await r.read()
            assert e.value.stage == "body"
        r = await client.get(server.url + "/cut")
        with pytest.raises(PayloadError):
            await r.read()
        r.release()
        r = await client.get(server.url + "/stall", timeouts=Timeouts(total=0.5))
        with pytest.raises(ResponseTimeout):
            await r.read()
        r.release()
    run(handler, body, timeouts=Timeouts(read=0.3))


def test_refused_connection_is_a_connect_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def main() -> None:
        async with HTTPClient() as client:
            with pytest.raises(ConnectError, match=f"^dial tcp 127.0.0.1:{port}: connect: "
                                                   "connection refused$"):
                await client.get(f"http://127.0.0.1:{port}/")
    asyncio.run(main())


def test_unix_socket_and_streamed_uploads(tmp_path: Path) -> None:
    async def handler(req: Request) -> bytes | None:
        return json_response({"te": req.headers.get("transfer-encoding", ""),
                              "len": len(req.body), "path": req.path})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"y" * 100_000

    async def body(server: Server, client: HTTPClient) -> None:
        r = await client.request("PATCH", "http://localhost/up", data=chunks())
        assert await r.json() == {"te": "chunked", "len": 4_000_000, "path": "/up"}
        r = await client.request("PUT", "http://localhost/up?x=1", data=chunks(),
                                 headers={"Content-Length": "4000000"})
        assert await r.json() == {"te": "", "len": 4_000_000, "path": "/up?x=1"}
    server = run(handler, body, unix=str(tmp_path / "s.sock"))
    assert server.connections == 1


def test_a_slow_reader_holds_the_server_back_and_gets_every_byte() -> None:
    blob = bytes(range(256)) * (6 << 12)                  # 6 MiB

    async def handler(req: Request) -> bytes | None:
        return response(200, blob)

    async def body(server: Server, client: HTTPClient) -> None:
        async with await client.get(server.url + "/big") as r:
            await asyncio.sleep(0.3)                      # the server writes meanwhile
            conn = r._conn
            assert conn is not None and conn.buffered <= (2 << 20), conn.buffered
            got = [c async for c in r.iter_chunks(1 << 16)]
        assert b"".join(got) == blob
        async with await client.get(server.url + "/big") as r:
            assert await r.read() == blob
    assert run(handler, body).connections == 1


def test_url_userinfo_non_ascii_and_header_injection(tmp_path: Path) -> None:
    async def handler(req: Request) -> bytes | None:
        return json_response({"path": req.path, "host": req.headers["host"],
                              "auth": req.headers.get("authorization", "")})

    async def body(server: Server, client: HTTPClient) -> None:
        r = await client.get("http://u:p%40w@bücher.example:8/a b/файл%20?q=a b&x=%2F")
        assert await r.json() == {"path": "/a%20b/%D1%84%D0%B0%D0%B9%D0%BB%20?q=a%20b&x=%2F",
                                  "host": "xn--bcher-kva.example:8",
                                  "auth": basic_auth("u", "p@w")}
        for bad in ({"X-Token": "a\r\nX-Evil: 1"}, {"X\nY": "a"}, {"X-Token": "ф"}):
            with pytest.raises(HTTPError, match="invalid header field"):
                await client.get("http://localhost/", headers=bad)
        with pytest.raises(InvalidURL):
            await client.get("http://" + "a" * 64 + ".example/")
    run(handler, body, unix=str(tmp_path / "s.sock"))
