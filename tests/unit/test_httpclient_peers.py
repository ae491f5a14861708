"""util/httpclient against servers that misbehave or answer unusually, scripted on
raw asyncio streams: oversized response heads, 1xx interim responses, bytes after
a response, an upload the server stops reading or answers early. No root, no daemon."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

import pytest

from pydockerd.util.httpclient import HTTPClient, PayloadError, ResponseTimeout, Timeouts

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(script: Script, body: Callable[[str, HTTPClient, list[int]], Awaitable[None]],
        timeouts: Timeouts = Timeouts(read=5)) -> None:
    """Serve script on every connection; body(url, client, connections) in 10 s."""
    async def main() -> None:
        conns: list[int] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conns.append(len(conns))
            try:
                await script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            async with HTTPClient(timeouts=timeouts) as client, asyncio.timeout(10):
                await body(url, client, conns)
        finally:
            server.close()
    asyncio.run(main())


async def _request_head(reader: asyncio.StreamReader) -> str:
    return (await reader.readuntil(b"\r\n\r\n")).decode().split(" ", 2)[1]


def test_an_oversized_response_head_is_refused() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(3000):                            # 3000 lines or one of 3 MiB
            writer.write(b"X-%d: y\r\n" % i if path == "/many" else b"X: " + b"a" * 1024)
            await writer.drain()
        writer.write(b"\r\n")
        await writer.drain()

    async def body(url: str, client: HTTPClient, conns: list[int]) -> None:
        with pytest.raises(PayloadError, match="too many response headers"):
            await client.get(url + "/many")
        with pytest.raises(PayloadError, match="headers too large"):
            await client.get(url + "/long")
    run(script, body)


def test_interim_responses_are_skipped_and_bytes_after_a_response_stop_reuse() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while path := await _request_head(reader):
            if path == "/continue":                      # the answer comes later
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nput")
            elif path == "/hints":                       # 103 and 200 in one segment
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                             b"HTTP/1.1 200 OK\r\nX: 1\r\nContent-Length: 2\r\n\r\nok")
            else:                                        # a stray response follows
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
                             b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\ntwo")
            await writer.drain()

    async def body(url: str, client: HTTPClient, conns: list[int]) -> None:
        async with await client.get(url + "/continue") as r:
            assert (r.status, await r.read()) == (201, b"put")
        async with await client.get(url + "/hints") as r:
            assert r.status == 200 and await r.read() == b"ok"
            assert [k for k, _ in r.headers.items()] == ["X", "Content-Length"]
        assert conns == [0]
        async with await client.get(url + "/stray") as r:
            assert (r.status, await r.read()) == (200, b"one")
        async with await client.get(url + "/hints") as r:
            assert r.status == 200 and await r.read() == b"ok"
        assert conns == [0, 1]                           # the stray one was not reused
    run(script, body)


async def _upload() -> AsyncIterator[bytes]:
    for _ in range(64):
        yield b"z" * (1 << 20)


def test_an_upload_the_server_does_not_read_times_out() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        await asyncio.sleep(30)

    async def body(url: str, client: HTTPClient, conns: list[int]) -> None:
        with pytest.raises(ResponseTimeout) as e:
            await client.request("PATCH", url + "/up", data=_upload())
        assert e.value.stage == "write"
    run(script, body, timeouts=Timeouts(read=0.5, total=2))


def test_an_answer_in_the_middle_of_an_upload_is_returned() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = await _request_head(reader)
        close = b"Connection: close\r\n" if path == "/close" else b""
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\n%bContent-Length: 4\r\n\r\nbig!"
                     % close)
        await writer.drain()
        await asyncio.sleep(0.2 if close else 30)        # never reads the body

    async def body(url: str, client: HTTPClient, conns: list[int]) -> None:
        for path in ("/close", "/open", "/open"):
            async with await client.request("PATCH", url + path, data=_upload()) as r:
                assert (r.status, await r.read()) == (413, b"big!")
        assert conns == [0, 1, 2]                        # a half-sent one is not reused
    run(script, body)
