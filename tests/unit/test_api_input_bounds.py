"""Bounds on what one connection's input and the route cache can hold, and the
cancellation of a stepped task (api/httpwire.py, api/targets.py, util/tasks.py)."""
from __future__ import annotations

import asyncio
import random

import pytest

from pydockerd.api.http import AnyResponse, Request, Response
from pydockerd.api.httpwire import BadRequest, HeadersTooLarge, RequestParser
from pydockerd.api.router import Route, Router
from pydockerd.api.targets import Targets
from pydockerd.util.tasks import TaskOwner

CHUNKED = (b"POST /echo HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\n\r\n")
PING = b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"


def _feed_one(parser: RequestParser, buf: bytes, step: int = 0) -> int:
    """Feed buf (in pieces of `step` bytes; 0: whole) as conninput does: up to the
    end of the first complete request; returns how many bytes were parsed."""
    pos = 0
    limit = len(buf)
    while pos < limit and not (parser.messages and parser.messages[-1].complete):
        piece = buf[:min(limit, pos + step)] if step else buf
        n = parser.feed_message(piece, pos)
        pos += n
    return pos


def test_a_chunked_request_is_parsed_up_to_its_end_and_no_further() -> None:
    for step in (0, 1, 2, 5, 7):
        parser = RequestParser()
        buf = CHUNKED + PING * 1000 + b"STDIN"
        assert _feed_one(parser, buf, step) == len(CHUNKED), step
        assert len(parser.messages) == 1 and parser.messages[0].complete
        assert b"".join(parser.messages[0].body) == b"abc"


def test_a_chunked_body_holding_blank_lines_and_zeros_is_read_whole() -> None:
    rnd = random.Random(7)
    pieces = [b"a\r\n\r\n", b"\n0\r\n\r\n", b"\r\n0", b"\n\n", b"0\r\n", b"x" * 50, b"\r\n"]
    ends = [b"0\r\n\r\n", b"000\r\n\r\n", b"0;ext=1\r\n\r\n", b"0\r\nX-Trailer: 1\r\n\r\n"]
    for n in range(200):
        chunks = [b"".join(rnd.choices(pieces, k=rnd.randint(1, 6)))
                  for _ in range(rnd.randint(0, 3))]
        sizes = [b"%x", b"%X", b"00%x", b"%x;name=\"v\\r\\n0\\r\\n\""]  # (an extension)
        req = (b"POST /echo HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(rnd.choice(sizes) % len(c) + b"\r\n%s\r\n" % c for c in chunks)
               + rnd.choice(ends))
        for step in (0, 1, 2, 3, rnd.randint(4, 40)):
            parser = RequestParser()
            assert _feed_one(parser, req + CHUNKED + PING, step) == len(req), (n, step)
            [msg] = parser.messages
            assert msg.complete and b"".join(msg.body) == b"".join(chunks)


def test_a_chunked_body_is_walked_by_its_chunks_not_cut_at_its_text() -> None:
    # 8 MiB of text whose every line looks like a last chunk ("\n0 ...\r\n\r\n"), in
    # 32 KiB chunks and 256 KiB reads: one feed per read (cut at every "\n0 ...\n\r\n"
    # it took 1.6 million feeds and 1.7 s)
    data = b"0 line\r\n\r\n" * (8 << 17)
    req = (b"POST /load HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 32768]), data[i:i + 32768])
                      for i in range(0, len(data), 32768)) + b"0\r\n\r\n")
    parser, feeds, got = RequestParser(), 0, 0
    for off in range(0, len(req), 256 << 10):
        buf, pos = req[off:off + (256 << 10)], 0
        while pos < len(buf):
            pos += parser.feed_message(buf, pos)
            feeds += 1
            got += sum(map(len, parser.messages[-1].body))
            parser.messages[-1].body.clear()
    assert parser.messages[-1].complete and got == len(data)
    assert feeds <= len(req) // (256 << 10) + 4, feeds


def test_a_chunk_size_line_over_4_kib_is_refused() -> None:
    parser = RequestParser()
    head = b"POST /echo HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
    line = b"3;" + b"x" * 5000 + b"\r\n"
    with pytest.raises(BadRequest):
        _feed_one(parser, head + line + b"abc\r\n0\r\n\r\n", 1000)


async def _list(req: Request) -> AnyResponse:
    return Response(200, b"[]", "application/json")


def test_the_route_cache_keeps_no_large_targets() -> None:
    router = Router()
    router.add([Route("GET", "/containers/json", _list)])
    targets = Targets(router)
    for i in range(300):
        url = b"/v1.50/containers/json?filters=%d" % i + b"x" * (64 << 10)
        t = targets.get("GET", url)
        assert t.route.handler is _list and t.version == "1.50"
        assert t.query.startswith("filters=%d" % i) and len(t.query) > 64 << 10
    short = targets.get("GET", b"/v1.50/containers/json?all=1")
    assert targets.get("GET", b"/v1.50/containers/json?all=1") is short   # cached
    held = sum(len(url) + len(t.query) for (_, url), t in targets._cache.items())
    assert held <= 256 << 10, held


def test_a_stepped_task_cancelled_before_its_first_step_cancels_the_coroutine() -> None:
    events: list[str] = []

    async def job(first: str) -> None:
        try:
            events.append("start")
            if first == "sleep0":
                await asyncio.sleep(0)           # yields None to the task
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        finally:
            events.append("finally")

    async def main(first: str) -> None:
        owner = TaskOwner("t")
        task = owner.spawn_stepped(job(first), "j")
        assert task is not None and events == ["start"]
        task.cancel()                            # before the task's first step
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled() and events == ["start", "cancelled", "finally"]
        assert len(owner) == 0
    for first in ("sleep", "sleep0"):
        events.clear()
        asyncio.run(main(first))


def test_a_stepped_task_runs_its_coroutine_to_the_end() -> None:
    async def job(out: list[int]) -> None:
        await asyncio.sleep(0)
        out.append(1)
        await asyncio.sleep(0.01)
        try:
            await asyncio.wait_for(asyncio.sleep(3600), 0.01)
        except asyncio.TimeoutError:
            out.append(2)

    async def main() -> None:
        owner = TaskOwner("t")
        out: list[int] = []
        task = owner.spawn_stepped(job(out), "j")
        assert task is not None and "rest of" in repr(task.get_coro())
        await task
        assert out == [1, 2]
        await owner.close()
    asyncio.run(main())


def test_trailers_are_not_merged_into_the_request_headers() -> None:
    req = (b"POST /echo HTTP/1.1\r\nHost: d\r\nX-Registry-Auth: good\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
           b"X-Registry-Auth: evil\r\nContent-Type: text/evil\r\n\r\n")
    for step in (0, 1, 7):
        parser = RequestParser()
        assert _feed_one(parser, req + PING, step) == len(req)
        [msg] = parser.messages
        assert msg.complete and b"".join(msg.body) == b"abc"
        assert msg.headers == {"host": "d", "x-registry-auth": "good",
                               "transfer-encoding": "chunked"}, step


def test_trailers_count_against_the_head_bound() -> None:
    parser = RequestParser()
    req = (b"POST /echo HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
           + b"X-T: %s\r\n" % (b"t" * 1000) * 1100 + b"\r\n")
    with pytest.raises(HeadersTooLarge):
        _feed_one(parser, req, 1 << 16)


def test_a_chunk_size_line_is_refused_from_4096_bytes_with_its_crlf_as_go() -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
    for length, ok in ((4095, True), (4096, False)):
        line = b"3;" + b"x" * (length - 4) + b"\r\n"
        assert len(line) == length
        for step in (0, 1000, 4095):
            parser = RequestParser()
            req = head + line + b"abc\r\n0\r\n\r\n"
            if ok:
                assert _feed_one(parser, req, step) == len(req)
                assert b"".join(parser.messages[0].body) == b"abc"
            else:
                with pytest.raises(BadRequest):
                    _feed_one(parser, req, step)


def test_chunk_sizes_with_many_leading_zeros_are_walked_whole() -> None:
    req = (b"POST /echo HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"0" * 30 + b"3;e=1\r\nabc\r\n" + b"0" * 20 + b"\r\n\r\n")
    for step in (0, 1, 17):
        parser = RequestParser()
        assert _feed_one(parser, req + PING, step) == len(req), step
        assert b"".join(parser.messages[0].body) == b"abc"
