"""api/wire_progress.py: each typed progress event → the exact bytes dockerd's clients
read (no daemon, no root)."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from pydockerd.api.wire_progress import build_lines, encode, lines
from pydockerd.progress import (BuiltImage, ErrorEvent, KeepAlive, LayerStatus, Progress,
                                ProgressEvent, PushedDigest, Status, StreamText)

BAR_0 = "[" + " " * 50 + "]"
BAR_FULL = "[" + "=" * 50 + "]"
LOAD_0 = "[>" + " " * 50 + "]"

CASES: list[tuple[ProgressEvent, str]] = [
    (Status("Pulling from library/busybox", "1"),
     '{"status":"Pulling from library/busybox","id":"1"}'),
    (Status("Digest: sha256:ab"), '{"status":"Digest: sha256:ab"}'),
    (LayerStatus("0123456789ab", "Pull complete"),
     '{"status":"Pull complete","progressDetail":{},"id":"0123456789ab"}'),
    (LayerStatus("", "Importing"), '{"status":"Importing","progressDetail":{},"id":""}'),
    (Progress("0123456789ab", "Extracting", 0, 258),
     '{"status":"Extracting","progressDetail":{"current":0,"total":258},'
     f'"progress":"{BAR_0}       0B/258B","id":"0123456789ab"}}'),
    (Progress("0123456789ab", "Extracting", 6, 258),
     '{"status":"Extracting","progressDetail":{"current":6,"total":258},'
     '"progress":"[>' + " " * 49 + ']       6B/258B","id":"0123456789ab"}'),
    (Progress("x", "Pushing", 1036097, 1036097),
     '{"status":"Pushing","progressDetail":{"current":1036097,"total":1036097},'
     f'"progress":"{BAR_FULL}  1.036MB/1.036MB","id":"x"}}'),
    (Progress("x", "Downloading", 1500, 0),
     '{"status":"Downloading","progressDetail":{"current":1500,"total":0},'
     '"progress":"   1.5kB","id":"x"}'),
    (Progress("0123456789ab", "Loading layer", 0, 2129920, style="load"),
     '{"status":"Loading layer","progressDetail":{"current":0,"total":2129920},'
     f'"progress":"{LOAD_0}       0B/2.13MB","id":"0123456789ab"}}'),
    (Progress("0123456789ab", "Loading layer", 2129920, 2129920, style="load"),
     '{"status":"Loading layer","progressDetail":{"current":2129920,"total":2129920},'
     f'"progress":"{BAR_FULL}   2.13MB/2.13MB","id":"0123456789ab"}}'),
    (Progress("", "Importing", 10, 0, style="load"),
     '{"status":"Importing","progressDetail":{"current":10,"total":0},'
     f'"progress":"{BAR_FULL}      10B/0B","id":""}}'),
    (ErrorEvent("manifest unknown"),
     '{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}'),
    (ErrorEvent("The command '/bin/sh -c exit 3' returned a non-zero code: 3", 3),
     '{"errorDetail":{"code":3,"message":"The command \'/bin/sh -c exit 3\' returned a '
     'non-zero code: 3"},"error":"The command \'/bin/sh -c exit 3\' returned a non-zero '
     'code: 3"}'),
    (PushedDigest("1", "sha256:ab", 527),
     '{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:ab","Size":527}}'),
    (BuiltImage("sha256:cd"), '{"aux":{"ID":"sha256:cd"}}'),
    (StreamText("Loaded image: busybox:latest\n"),
     '{"stream":"Loaded image: busybox:latest\\n"}'),
    (StreamText("caf\u00e9\n"), '{"stream":"caf\\u00e9\\n"}'),
]


@pytest.mark.parametrize("event,json_text", CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_event_encoding(event: ProgressEvent, json_text: str) -> None:
    assert encode(event) == json_text.encode() + b"\r\n"
    assert encode(event, b"\n") == json_text.encode() + b"\n"


def test_keepalive_is_bare_newline() -> None:
    assert encode(KeepAlive(), b"\n") == b"\n"


def test_not_an_event() -> None:
    with pytest.raises(TypeError):
        encode("text")  # type: ignore[arg-type]


def test_streams_frame_and_close_their_source() -> None:
    closed: list[bool] = []

    async def events() -> AsyncIterator[ProgressEvent]:
        try:
            yield StreamText("a")
            yield KeepAlive()
            yield BuiltImage("sha256:x")
        finally:
            closed.append(True)

    async def run() -> tuple[list[bytes], list[bytes]]:
        pull = [b async for b in lines(events())]
        build = [b async for b in build_lines(events())]
        return pull, build
    pull, build = asyncio.run(run())
    assert pull == [b'{"stream":"a"}\r\n', b"\r\n", b'{"aux":{"ID":"sha256:x"}}\r\n']
    assert build == [b'{"stream":"a"}\n', b"\n", b'{"aux":{"ID":"sha256:x"}}\n']

    async def abandoned() -> None:
        body = lines(events())
        await body.__anext__()
        await body.aclose()          # what the server does when the client goes away
    closed.clear()
    asyncio.run(abandoned())
    assert closed == [True]
