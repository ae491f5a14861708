"""The connection protocol without a daemon (api/connection.py): pipelining order,
requests that run as a task, body back-pressure, hijack hand-over,
shutdown of idle connections. Raw bytes on a unix socket in a temp dir."""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable

from pydockerd.api.conninput import HIGH_WATER as _HIGH_WATER
from pydockerd.api.http import AnyResponse, HijackResponse, Request, Response, json_response
from pydockerd.api.router import Route, Router
from pydockerd.api.server import ApiServer

from test_api_server import parse_responses

Client = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def serve(routes: list[Route], body: Callable[[ApiServer, Client], Awaitable[None]]) -> None:
    async def main() -> None:
        router = Router()
        router.add(routes)
        server = ApiServer(router)
        with tempfile.TemporaryDirectory() as tmp:
            sock = os.path.join(tmp, "api.sock")
            await server.listen_unix(sock, None)
            try:
                await asyncio.wait_for(body(server, lambda: asyncio.open_unix_connection(
                    sock, limit=1 << 24)), 20)
            finally:
                await server.stop_accepting()
                await server.finish(1)
    asyncio.run(main())


async def _echo(req: Request) -> AnyResponse:
    return json_response({"path": req.path, "body": (await req.body.read()).decode()})


async def _slow(req: Request) -> AnyResponse:
    await asyncio.sleep(0.05)
    return json_response({"path": req.path})


async def _timed(req: Request) -> AnyResponse:
    # aiohttp's timers and asyncio.timeout need a current task from the first step on
    assert asyncio.current_task() is not None
    async with asyncio.timeout(5):
        return json_response({"path": req.path})


ROUTES = [Route("POST", "/echo", _echo), Route("GET", "/slow", _slow),
          Route("GET", "/timed", _timed)]


def test_pipelined_requests_are_answered_in_order() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        writer.write(b"GET /slow HTTP/1.1\r\nHost: d\r\n\r\n"
                     b"POST /echo HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /timed HTTP/1.1\r\nHost: d\r\n\r\n"
                     b"GET /slow HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        got = parse_responses(await reader.read())
        writer.close()
        assert [(s, json.loads(b)["path"]) for s, _, b in got] == \
            [(200, "/slow"), (200, "/echo"), (200, "/timed"), (200, "/slow")]
        assert json.loads(got[1][2])["body"] == "abc"
    serve(ROUTES, body)


def test_bytes_that_are_not_http_after_a_request_are_a_400_after_its_answer() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        writer.write(b"GET /slow HTTP/1.1\r\nHost: d\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
        got = parse_responses(await reader.read())
        writer.close()
        assert [s for s, _, _ in got] == [200, 400]
    serve(ROUTES, body)


def test_a_large_body_is_read_as_the_handler_uses_it() -> None:
    """A handler that consumes its body slowly (docker load) never has more than
    about _HIGH_WATER bytes of it buffered in the daemon."""
    seen: list[int] = []

    async def consume(req: Request) -> AnyResponse:
        total = 0
        async for chunk in req.body.chunks():
            total += len(chunk)
            conns = list(server_ref[0]._site.connections)
            seen.append(max(c.parser.queued_body for c in conns))
            await asyncio.sleep(0.0005)
        return json_response(total)
    server_ref: list[ApiServer] = []
    size = 24 << 20

    async def body(server: ApiServer, connect: Client) -> None:
        server_ref.append(server)
        reader, writer = await connect()
        writer.write(f"POST /load HTTP/1.1\r\nHost: d\r\nContent-Length: {size}\r\n"
                     "Connection: close\r\n\r\n".encode())
        chunk = b"x" * (1 << 20)
        for _ in range(size >> 20):
            writer.write(chunk)
            await writer.drain()
        [(status, _, got)] = parse_responses(await reader.read())
        writer.close()
        assert status == 200 and json.loads(got) == size
    serve([Route("POST", "/load", consume)], body)
    assert max(seen) <= _HIGH_WATER + (1 << 20), max(seen)


def echo_hijack(n: int) -> Route:
    """POST /attach: hijacks the connection, reads `n` bytes, answers b"got:" and
    them, and closes."""
    async def attach(req: Request) -> AnyResponse:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"got:" + await reader.readexactly(n))
            await writer.drain()
            writer.close()
        return HijackResponse(handler)
    return Route("POST", "/attach", attach)


def test_hijacked_connection_gets_the_bytes_sent_with_the_request() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        writer.write(b"POST /attach HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                     b"Upgrade: tcp\r\nContent-Length: 2\r\n\r\n{}early")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 UPGRADED")
        writer.write(b"late!")
        assert await reader.read() == b"got:earlylate!"
        writer.close()
    serve([echo_hijack(10)], body)


def test_finish_closes_idle_connections_at_once_and_lets_requests_end() -> None:
    release = asyncio.Event()

    async def wait(req: Request) -> AnyResponse:
        await release.wait()
        return Response(200, b"done", "text/plain")

    async def body(server: ApiServer, connect: Client) -> None:
        idle_r, idle_w = await connect()
        idle_w.write(b"POST /echo HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
        await idle_r.readuntil(b"\r\n\r\n")
        busy_r, busy_w = await connect()
        busy_w.write(b"GET /wait HTTP/1.1\r\nHost: d\r\n\r\n")
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        finishing = asyncio.ensure_future(server.finish(10))
        await idle_r.read()                          # EOF at once
        assert time.monotonic() - t0 < 1
        release.set()
        got = parse_responses(await busy_r.read())
        assert [(s, b) for s, _, b in got] == [(200, b"done")]
        await finishing
        idle_w.close()
        busy_w.close()
    serve([*ROUTES, Route("GET", "/wait", wait)], body)
