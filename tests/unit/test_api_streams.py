"""Stream framing (stdcopy) and detach keys, table-driven."""
from __future__ import annotations

import asyncio
import struct

import pytest

from pydockerd.api.streams import DetachScanner, frame, parse_detach_keys, pump_input


@pytest.mark.parametrize("stream, data, header", [
    ("stdin", b"", b"\x00\x00\x00\x00\x00\x00\x00\x00"),
    ("stdout", b"hi\n", b"\x01\x00\x00\x00\x00\x00\x00\x03"),
    ("stderr", b"x" * 70000, b"\x02\x00\x00\x00" + struct.pack(">L", 70000)),
])
def test_frame(stream, data, header):
    assert frame(stream, data) == header + data


@pytest.mark.parametrize("spec, keys", [
    (None, b"\x10\x11"),                  # Docker's default: ctrl-p,ctrl-q
    ("", b"\x10\x11"),
    ("ctrl-a", b"\x01"),
    ("ctrl-z,ctrl-@", b"\x1a\x00"),
    ("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x1b\x1c\x1d\x1e\x1f"),
    ("a,b", b"ab"),
    ("CTRL-P, Ctrl-Q", b"\x10\x11"),
])
def test_parse_detach_keys(spec, keys):
    assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", ["ctrl-1", "ctrl-", "abc", "ctrl-pq"])
def test_parse_detach_keys_rejects(spec):
    with pytest.raises(ValueError):
        parse_detach_keys(spec)


@pytest.mark.parametrize("chunks, forwarded, detached", [
    ([b"hello"], b"hello", False),
    ([b"ab\x10\x11cd"], b"ab", True),               # bytes after the keys are dropped
    ([b"ab\x10", b"\x11"], b"ab", True),            # keys split across reads
    ([b"a\x10b"], b"a\x10b", False),                # a broken sequence is forwarded
    ([b"\x10", b"x"], b"\x10x", False),
    ([b"\x10\x10\x11"], b"\x10", True),             # restart on the first key
])
def test_detach_scanner(chunks, forwarded, detached):
    scanner = DetachScanner(b"\x10\x11")
    out, hit = b"", False
    for chunk in chunks:
        data, hit = scanner.feed(chunk)
        out += data
        if hit:
            break
    assert (out, hit) == (forwarded, detached)


def test_detach_scanner_without_keys_forwards_everything():
    assert DetachScanner(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


class _Reader:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def read(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


@pytest.mark.parametrize("chunks, keys, sent, detached, closed", [
    ([b"abc", b"def"], b"\x10\x11", [b"abc", b"def"], False, True),   # EOF closes stdin
    ([b"ab\x10\x11", b"zz"], b"\x10\x11", [b"ab"], True, False),       # detach keeps it
    ([b"\x10\x11"], None, [b"\x10\x11"], False, True),                  # no scanning
])
def test_pump_input(chunks, keys, sent, detached, closed):
    got: list[bytes] = []
    closes: list[bool] = []

    async def send(data: bytes) -> None:
        got.append(data)

    result = asyncio.run(pump_input(_Reader(chunks), send, lambda: closes.append(True), keys))
    assert (got, result, bool(closes)) == (sent, detached, closed)
