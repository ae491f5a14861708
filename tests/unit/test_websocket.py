"""RFC 6455 handshake and framing of api/websocket.py (attach over websockets)."""
from __future__ import annotations

import asyncio
import os
import struct

import pytest

from pydockerd.api.websocket import (HandshakeRefused, WebSocket, accept_token, encode_frame,
                                     server_handshake, unmask)

HEADERS = {"upgrade": "websocket", "connection": "keep-alive, Upgrade",
           "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13"}


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True,
                 rsv: int = 0) -> bytes:
    """A frame as a client sends it (masked unless told otherwise)."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", b0, bit | n)
    elif n < 1 << 16:
        head = struct.pack(">BBH", b0, bit | 126, n)
    else:
        head = struct.pack(">BBQ", b0, bit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class Source:
    """Hands out the given bytes in pieces of `step` (1: byte by byte)."""

    def __init__(self, data: bytes, step: int = 1 << 20) -> None:
        self.data, self.step = data, step

    async def read(self, n: int = -1) -> bytes:
        out, self.data = self.data[:self.step], self.data[self.step:]
        return out


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass


def read_all(data: bytes, step: int = 1 << 20, n: int = 7) -> tuple[bytes, WebSocket, Sink]:
    sink = Sink()
    ws = WebSocket(Source(data, step), sink)

    async def go() -> bytes:
        out = b""
        while chunk := await ws.read(n):
            out += chunk
        assert await ws.read(n) == b""        # the end stays the end
        return out
    return asyncio.run(go()), ws, sink


def test_accept_token_is_rfc_6455s_example() -> None:
    assert accept_token("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_answers_as_x_net_websocket() -> None:
    hs = server_handshake({**HEADERS, "origin": "http://anywhere.example"})
    assert hs.head() == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    one = server_handshake({**HEADERS, "sec-websocket-protocol": " chat "})
    assert b"Sec-WebSocket-Protocol: chat\r\n" in one.head()


@pytest.mark.parametrize("change, head", [
    ({"upgrade": ""}, b"HTTP/1.1 400 Bad Request\r\n\r\nnot websocket protocol"),
    ({"connection": "keep-alive"}, b"HTTP/1.1 400 Bad Request\r\n\r\nnot websocket protocol"),
    ({"sec-websocket-key": ""}, b"HTTP/1.1 400 Bad Request\r\n\r\nmismatch challenge/response"),
    ({"sec-websocket-version": "8"}, b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13"
                                     b"\r\n\r\nmissing or bad WebSocket Version"),
    ({"sec-websocket-protocol": "a, b"}, b"HTTP/1.1 400 Bad Request\r\n\r\n"),
])
def test_handshake_refusals(change: dict[str, str], head: bytes) -> None:
    with pytest.raises(HandshakeRefused) as e:
        server_handshake({**HEADERS, **change})
    assert e.value.head() == head


@pytest.mark.parametrize("n, header_len", [(0, 2), (125, 2), (126, 4), (65535, 4),
                                            (65536, 10)])
def test_encode_frame_lengths(n: int, header_len: int) -> None:
    f = encode_frame(2, b"x" * n)
    assert f[0] == 0x82 and len(f) == header_len + n
    assert f[1] & 0x80 == 0                  # a server never masks


def test_unmask_at_any_offset() -> None:
    data, key = os.urandom(1001), os.urandom(4)
    masked = bytes(c ^ key[i % 4] for i, c in enumerate(data))
    assert unmask(masked, key) == data
    assert unmask(masked[3:500], key, 3) + unmask(masked[500:], key, 500) == data[3:]


@pytest.mark.parametrize("step", [1, 3, 1 << 20])
def test_data_frames_in_any_pieces(step: int) -> None:
    big = os.urandom(70000)
    data = (client_frame(1, b"text ") + client_frame(2, b"") + client_frame(2, b"bin ")
            + client_frame(1, b"frag", fin=False) + client_frame(9, b"p")
            + client_frame(0, b"ment ", fin=False) + client_frame(0, b"", fin=True)
            + client_frame(2, big) + client_frame(8, struct.pack(">H", 1000)))
    out, ws, sink = read_all(data, step)
    assert out == b"text bin fragment " + big
    assert ws.peer_closed
    assert bytes(sink.data) == encode_frame(0xA, b"p")       # the ping's pong


def test_eof_without_close_frame() -> None:
    out, ws, sink = read_all(client_frame(1, b"abc") + client_frame(1, b"cut")[:5])
    assert out == b"abc" and not ws.peer_closed and not sink.data


@pytest.mark.parametrize("bad", [
    client_frame(1, b"unmasked", mask=False),
    client_frame(1, b"rsv", rsv=0x40),
    client_frame(3, b"reserved opcode"),
    client_frame(9, b"x" * 126),                 # control frame too long
    client_frame(9, b"ping", fin=False),         # fragmented control frame
    client_frame(0, b"no message to continue"),
    client_frame(1, b"a", fin=False) + client_frame(1, b"b"),
])
def test_protocol_errors_close_with_1002(bad: bytes) -> None:
    out, ws, sink = read_all(bad)
    assert out in (b"", b"a")
    assert bytes(sink.data) == encode_frame(8, struct.pack(">H", 1002))


def test_write_frames_and_close_once() -> None:
    sink = Sink()
    ws = WebSocket(Source(b""), sink, binary=False)
    ws.write(b"hi")
    ws.write(b"")                                 # nothing for nothing
    ws.close()
    ws.close(1002)
    ws.write(b"late")                             # no data after the close frame
    assert bytes(sink.data) == encode_frame(1, b"hi") + encode_frame(8, b"\x03\xe8")
