"""The HTTP edge without a daemon: an ApiServer with a small router on a unix
socket in a temp dir, driven with raw bytes (limits, errors, streams, versions)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from typing import AsyncIterator, Awaitable, Callable

import pytest

from pydockerd.api.http import AnyResponse, Request, StreamResponse, json_response
from pydockerd.api.httpwire import MAX_HEAD, MAX_TARGET
from pydockerd.api.router import Route, Router
from pydockerd.api.server import ApiServer
from pydockerd.errors import Conflict, InvalidParameter


async def _ok(req: Request) -> AnyResponse:
    return json_response({"query": req.query, "version": list(req.api_version)})


async def _boom(req: Request) -> AnyResponse:
    raise KeyError("secret internals")


async def _conflict(req: Request) -> AnyResponse:
    raise Conflict("it is in use")


async def _stream_fails_early(req: Request) -> AnyResponse:
    async def body() -> AsyncIterator[bytes]:
        raise InvalidParameter("checked before the status line")
        yield b""  # pragma: no cover
    return StreamResponse(body())


async def _stream_fails_late(req: Request) -> AnyResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"status":"working"}\n'
        raise InvalidParameter("broke half way")
    return StreamResponse(body())


async def _tar_fails_late(req: Request) -> AnyResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 512
        raise ValueError("disk went away")
    return StreamResponse(body(), "application/x-tar")


async def _json_body(req: Request) -> AnyResponse:
    return json_response({"body": await req.json()})


async def _filters(req: Request) -> AnyResponse:
    return json_response(req.filters())


ROUTES = [
    Route("GET", "/ok", _ok), Route("GET", "/boom", _boom), Route("GET", "/conflict", _conflict),
    Route("GET", "/early", _stream_fails_early), Route("GET", "/late", _stream_fails_late),
    Route("GET", "/tar", _tar_fails_late), Route("POST", "/body", _json_body),
    Route("GET", "/filters", _filters),
]


def exchange(*requests: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send raw bytes (one write per item) and parse every response until EOF."""
    async def main() -> bytes:
        router = Router()
        router.add(ROUTES)
        server = ApiServer(router)
        with tempfile.TemporaryDirectory() as tmp:
            sock = os.path.join(tmp, "api.sock")
            await server.listen_unix(sock, None)
            reader, writer = await asyncio.open_unix_connection(sock, limit=1 << 24)
            try:
                for r in requests:
                    writer.write(r)
                    try:
                        await writer.drain()
                    except ConnectionError:
                        break
                if writer.can_write_eof():
                    writer.write_eof()
                return await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()
                await server.stop_accepting()
                await server.finish(1)
    return parse_responses(asyncio.run(main()))


def parse_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    out = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, data = data.partition(b"\r\n")
                if not size_line:
                    headers["x-cut"] = "1"        # the connection ended mid-stream
                    break
                size = int(size_line, 16)
                body += data[:size]
                data = data[size + 2:]
                if size == 0:
                    break
        else:
            n = int(headers.get("content-length", "0"))
            body, data = data[:n], data[n:]
        out.append((status, headers, body))
    return out


def get(target: str, extra: str = "", close: bool = True) -> bytes:
    conn = "Connection: close\r\n" if close else ""
    return f"GET {target} HTTP/1.1\r\nHost: docker\r\n{extra}{conn}\r\n".encode()


def message(body: bytes) -> str:
    return json.loads(body)["message"]


@pytest.mark.parametrize("raw,status,text", [
    (b"GARBAGE\r\n\r\n", 400, "malformed HTTP request"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n", 400, "malformed HTTP request"),
    (b"GET /ok?" + b"a" * (MAX_TARGET + 10) + b" HTTP/1.1\r\n\r\n", 414, "URI too long"),
    (b"GET /ok?filters=" + b"x" * (1 << 20) + b" HTTP/1.1\r\n\r\n", 414, "URI too long"),
    (b"GET /ok HTTP/1.1\r\n" + b"X-Big: " + b"y" * MAX_HEAD + b"\r\n\r\n", 431, "too large"),
    (b"GET /ok HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEAD // 8))
     + b"\r\n", 431, "too large"),
])
def test_unreadable_requests_get_an_answer(raw: bytes, status: int, text: str) -> None:
    [(got, headers, body)] = exchange(raw)
    assert got == status
    assert text in message(body)
    assert headers["connection"] == "close"


def test_a_request_just_under_the_limits_is_served() -> None:
    q = "a=" + "b" * (MAX_TARGET - 100)
    [(status, _, body)] = exchange(get(f"/ok?{q}", "X-Big: " + "y" * (MAX_HEAD // 2) + "\r\n"))
    assert status == 200
    assert len(json.loads(body)["query"]["a"][0]) == MAX_TARGET - 100


def test_unexpected_exception_is_a_500_with_a_request_id_only(caplog) -> None:
    [(status, _, body)] = exchange(get("/boom"))
    assert status == 500
    text = message(body)
    assert text.startswith("internal server error (request ") and "secret" not in text
    rid = text.split("request ")[1].rstrip(")")
    assert any(rid in r.getMessage() and r.exc_info for r in caplog.records)


def test_docker_errors_keep_their_status() -> None:
    [(status, _, body)] = exchange(get("/conflict"))
    assert (status, message(body)) == (409, "it is in use")


def test_keep_alive_survives_errors() -> None:
    res = exchange(get("/boom", close=False), get("/nope", close=False), get("/ok"))
    assert [r[0] for r in res] == [500, 404, 200]


def test_stream_error_before_first_item_is_a_plain_response() -> None:
    [(status, headers, body)] = exchange(get("/early"))
    assert status == 400 and "transfer-encoding" not in headers
    assert message(body) == "checked before the status line"


def test_stream_error_after_first_item_ends_the_stream_in_its_format() -> None:
    [(status, headers, body)] = exchange(get("/late"))
    assert status == 200 and "x-cut" not in headers
    lines = [json.loads(x) for x in body.splitlines()]
    assert lines[-1] == {"errorDetail": {"message": "broke half way"}, "error": "broke half way"}
    assert b"HTTP/1.1" not in body


def test_tar_stream_error_cuts_the_connection_without_a_final_chunk() -> None:
    [(status, headers, body)] = exchange(get("/tar"))
    assert status == 200 and headers.get("x-cut") == "1" and body == b"x" * 512


@pytest.mark.parametrize("target,status,text", [
    ("/v1.99/ok", 400, "client version 1.99 is too new. Maximum supported API version is 1.50"),
    ("/v1.12/ok", 400, "client version 1.12 is too old. Minimum supported API version is "
                       "1.24, please upgrade your client to a newer version"),
    ("/v1.99/nope", 404, "page not found"),
    ("/v1.12/nope", 404, "page not found"),
    ("/nope", 404, "page not found"),
    ("/ok%00x", 400, "NUL"),
    ("/ok?a=%00", 400, "NUL"),
])
def test_versions_and_paths(target: str, status: int, text: str) -> None:
    [(got, _, body)] = exchange(get(target))
    assert got == status and text in message(body)


@pytest.mark.parametrize("target,version", [
    ("/ok", [1, 50]), ("/v1.24/ok", [1, 24]), ("/v1.41/ok", [1, 41]), ("/v1.50/ok", [1, 50]),
])
def test_version_prefix(target: str, version: list[int]) -> None:
    [(status, _, body)] = exchange(get(target))
    assert status == 200 and json.loads(body)["version"] == version


def post(target: str, body: bytes) -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


@pytest.mark.parametrize("body", [
    b"{", b"[1,", b'{"a":1} trailing', b"NaN", b'"\xff"', b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000, b"[" * 150 + b"]" * 150,
])
def test_malformed_json_bodies_are_400(body: bytes) -> None:
    [(status, _, resp)] = exchange(post("/body", body))
    assert status == 400 and message(resp).startswith("invalid JSON")


@pytest.mark.parametrize("value", [
    "%7B", "[1]", "%5B" * 5000 + "%5D" * 5000, '{"a":[1]}', '{"a":{"b":"yes"}}', '{"a":[[]]}',
])
def test_malformed_filters_are_400(value: str) -> None:
    [(status, _, resp)] = exchange(get(f"/filters?filters={value}"))
    assert status == 400, resp
    assert "filter" in message(resp)


def test_filters_forms() -> None:
    [(status, _, resp)] = exchange(get('/filters?filters={"a":["x"],"b":{"y":true,"z":false}}'))
    assert status == 200 and json.loads(resp) == {"a": ["x"], "b": ["y"]}


@contextlib.asynccontextmanager
async def _streaming(path: str, handler: Callable[[Request], Awaitable[AnyResponse]]
                     ) -> AsyncIterator[tuple[ApiServer, asyncio.StreamWriter]]:
    """An ApiServer with one GET route on a temporary unix socket, a client that
    asked for it and read a 200 head; the server is stopped at the end."""
    router = Router()
    router.add([Route("GET", path, handler)])
    server = ApiServer(router)
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "api.sock")
        await server.listen_unix(sock, None)
        reader, writer = await asyncio.open_unix_connection(sock)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: d\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            yield server, writer
        finally:
            writer.close()
            await server.stop_accepting()
            await server.finish(1)


def test_a_stream_ends_when_its_client_goes_away() -> None:
    """An idle stream (events, logs -f) is stopped as soon as the client closes the
    connection, not at its next write: its generator's cleanup runs at once."""
    ended = asyncio.Event()

    async def idle(req: Request) -> AnyResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield b""                        # the status line goes out
                await asyncio.sleep(3600)       # nothing to say for a long time
                yield b"never"
            finally:
                ended.set()
        return StreamResponse(body())

    async def main() -> None:
        async with _streaming("/idle", idle) as (_, writer):
            writer.close()
            await asyncio.wait_for(ended.wait(), 5)
    asyncio.run(main())


def test_a_stream_waits_while_its_client_does_not_read() -> None:
    """Write flow control (util/writeflow.py): a stream the client does not read
    stops producing once the transport's buffer is full, and ends when it leaves."""
    produced = [0]
    ended = asyncio.Event()

    async def endless(req: Request) -> AnyResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    produced[0] += 1 << 16
                    yield b"x" * (1 << 16)
                    await asyncio.sleep(0)       # (the loop turns even if writes never wait)
            finally:
                ended.set()
        return StreamResponse(body(), "application/x-tar")

    async def main() -> None:
        async with _streaming("/endless", endless) as (server, writer):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while not any(c.write_flow.paused for c in server._site.connections):
                assert loop.time() < deadline, produced
                await asyncio.sleep(0.01)
            before = produced[0]
            for _ in range(200):              # turns of the loop: nothing more is made
                await asyncio.sleep(0)
            assert produced[0] == before < 64 << 20
            writer.transport.abort()
            await asyncio.wait_for(ended.wait(), 5)
    asyncio.run(main())
