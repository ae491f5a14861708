"""Edges of api/connection.py: a hijack without `Upgrade:` and one whose client
left during the upgrade, unread request bodies (Go's 256 KiB drain), and inline
routes whose handler starts in the connection's callback."""
from __future__ import annotations

import asyncio
import json
import time

from pydockerd.api.connection import INLINE_BURST
from pydockerd.api.conninput import MAX_BODY_DRAIN
from pydockerd.api.http import AnyResponse, HijackResponse, Request, Response, json_response
from pydockerd.api.router import Route
from pydockerd.api.server import ApiServer

from test_api_connection import Client, echo_hijack, serve
from test_api_server import parse_responses


async def _until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_hijack_without_upgrade_gets_the_bytes_sent_with_the_request() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        # an old client: no Upgrade headers, stdin right behind the request
        writer.write(b"POST /attach HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}"
                     b"early\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        writer.write(b"late!")
        assert await asyncio.wait_for(reader.read(), 5) == b"got:early\r\n\r\nl"   # 10 bytes
        writer.close()
    serve([echo_hijack(10)], body)


def test_a_hijack_behind_a_chunked_request_gets_the_bytes_sent_after_it() -> None:
    async def echo(req: Request) -> AnyResponse:
        return json_response({"body": (await req.body.read()).decode()})

    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        writer.write(b"POST /echo HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\n\r\n"
                     b"POST /attach HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\nstdin")
        out = await asyncio.wait_for(reader.read(), 5)
        assert b'{"body":"abc"}' in out and out.endswith(b"\r\n\r\ngot:stdin")
        writer.close()
    serve([Route("POST", "/echo", echo), echo_hijack(5)], body)


def test_a_hijack_whose_client_left_during_the_upgrade_starts_nothing() -> None:
    gate = asyncio.Event()
    started: list[bool] = []
    closed: list[bool] = []

    async def attach(req: Request) -> AnyResponse:
        await gate.wait()                        # the route prepares the session

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            started.append(True)
            await asyncio.sleep(3600)            # a container that prints nothing

        async def on_closed() -> None:
            closed.append(True)
        return HijackResponse(handler, on_closed=on_closed)

    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        writer.write(b"POST /attach HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                     b"Upgrade: tcp\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await _until(lambda: all(c.eof for c in server._site.connections))
        gate.set()
        await _until(lambda: len(server._site.tasks) == 0)
        assert not started and closed == [True]
    serve([Route("POST", "/attach", attach)], body)


async def _ignore(req: Request) -> AnyResponse:
    return Response(200, b"ignored", "text/plain")


def test_an_unread_body_over_256k_closes_the_connection_after_the_answer() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        writer.write(b"POST /ignore HTTP/1.1\r\nHost: d\r\nContent-Length: %d\r\n\r\n"
                     % (10 << 20) + b"x" * (64 << 10))
        got = await asyncio.wait_for(reader.read(), 5)     # EOF without the other 9.9 MiB
        [(status, headers, text)] = parse_responses(got)
        assert (status, text) == (200, b"ignored")
        assert headers.get("connection", "").lower() == "close"
        writer.close()
    serve([Route("POST", "/ignore", _ignore)], body)


def test_an_unread_chunked_body_over_256k_closes_the_connection() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        chunk = b"y" * (64 << 10)
        writer.write(b"POST /ignore HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"%x\r\n%s\r\n" % (len(chunk), chunk) * (MAX_BODY_DRAIN // len(chunk) + 2))
        got = await asyncio.wait_for(reader.read(), 5)
        [(status, headers, _)] = parse_responses(got)
        assert status == 200 and headers.get("connection", "").lower() == "close"
        writer.close()
    serve([Route("POST", "/ignore", _ignore)], body)


def test_an_unread_body_awaiting_100_continue_is_not_waited_for() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        writer.write(b"POST /ignore HTTP/1.1\r\nHost: d\r\nContent-Length: 1000\r\n"
                     b"Expect: 100-continue\r\n\r\n")          # the body waits for a 100
        [(status, headers, _)] = parse_responses(await asyncio.wait_for(reader.read(), 5))
        assert status == 200 and headers.get("connection", "").lower() == "close"
        writer.close()
    serve([Route("POST", "/ignore", _ignore)], body)


def test_a_small_unread_body_is_dropped_and_the_connection_kept() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        size = MAX_BODY_DRAIN - 1
        writer.write(b"POST /ignore HTTP/1.1\r\nHost: d\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"z" * size)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n"
                     b"Connection: close\r\n\r\nhi")
        got = parse_responses(await asyncio.wait_for(reader.read(), 5))
        assert [(s, b) for s, _, b in got][0] == (200, b"ignored")
        assert "connection" not in got[0][1]
        assert got[1][0] == 200 and json.loads(got[1][2])["body"] == "hi"
        writer.close()

    async def echo(req: Request) -> AnyResponse:
        return json_response({"body": (await req.body.read()).decode()})
    serve([Route("POST", "/ignore", _ignore), Route("POST", "/echo", echo)], body)


def test_inline_routes_answer_at_once_or_after_waiting_and_in_order() -> None:
    ended: list[str] = []

    async def quick(req: Request) -> AnyResponse:
        return json_response({"n": req.q("n")})

    async def waits(req: Request) -> AnyResponse:
        await asyncio.sleep(0.001)
        assert asyncio.current_task() is not None  # the rest runs as a task
        return json_response({"n": req.q("n")})

    async def forever(req: Request) -> AnyResponse:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("forever")
        raise AssertionError("not reached")

    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        n = 400          # pipelined in one write: served in a loop, not by recursion
        writer.write(b"".join(b"GET /%s?n=%d HTTP/1.1\r\nHost: d\r\n\r\n"
                              % (b"quick" if i % 3 else b"waits", i) for i in range(n)))
        writer.write(b"GET /quick?n=last HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        got = parse_responses(await asyncio.wait_for(reader.read(), 10))
        assert [json.loads(b)["n"] for _, _, b in got] == [str(i) for i in range(n)] + ["last"]
        writer.close()
        r2, w2 = await connect()
        w2.write(b"GET /forever HTTP/1.1\r\nHost: d\r\n\r\n")
        await _until(lambda: len(server._site.tasks) == 1)
        await server.finish(0.05)                  # cancels it: the coroutine sees it
        assert ended == ["forever"]
        w2.close()
    serve([Route("GET", "/quick", quick, inline=True), Route("GET", "/waits", waits, inline=True),
           Route("GET", "/forever", forever, inline=True)], body)


def test_pipelined_inline_requests_let_the_loop_run_between_bursts() -> None:
    events: list[str] = []

    async def ping(req: Request) -> AnyResponse:
        if not events:      # something else the loop has to do meanwhile
            asyncio.get_running_loop().call_soon(events.append, "other")
        events.append("ping")
        return Response(200, b"OK", "text/plain")

    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        n = 20 * INLINE_BURST
        writer.write(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n" * n)
        got = b""
        while got.count(b"HTTP/1.1 200") < n:
            got += await asyncio.wait_for(reader.read(1 << 16), 5)
        assert events.count("ping") == n
        assert events.index("other") <= INLINE_BURST, events.index("other")
        writer.close()
    serve([Route("GET", "/_ping", ping, inline=True)], body)


def test_an_upgrade_request_with_a_chunked_body_is_refused_not_hijacked() -> None:
    async def body(server: ApiServer, connect: Client) -> None:
        reader, writer = await connect()
        writer.write(b"POST /attach HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                     b"Upgrade: tcp\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\n{}\r\n0\r\n\r\nstdin")
        [(status, _, got)] = parse_responses(await asyncio.wait_for(reader.read(), 5))
        writer.close()
        assert status == 400 and b"chunked body on an upgrade" in got, (status, got)
    serve([echo_hijack(5)], body)
