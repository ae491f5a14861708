"""RFC 6455 websockets on a hijacked connection: the server handshake and the framing.

Written for `GET /containers/{id}/attach/ws`, with the answers of dockerd's
golang.org/x/net/websocket server (Handshake: nil, so no Origin check):

- the handshake needs `Upgrade: websocket`, a `Connection` naming `upgrade`, a
  `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13`; a refusal is a bare
  `400 Bad Request` with x/net's text as body. One offered subprotocol is echoed;
  more than one is refused (x/net leaves the choice to a Handshake func dockerd
  does not set).
- the server sends unmasked, unfragmented frames of one type (text or binary);
  client frames must be masked (else close 1002), fragments are joined, a ping is
  answered with a pong, a close frame ends the input.

`WebSocket` is both sides of the connection as byte streams: `read(n)` gives the
payload of the client's data frames (b"" once the client closed), `write(data)`
sends one data frame; so the attach pump (api/streams.pump_hijacked) runs over it
unchanged.
"""
from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Protocol
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
else:   # OpenSSL's digests: loaded by the first one (issue 10: idle memory)
    hashlib = lazy_import("hashlib")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002

_MAX_CONTROL = 125
_READ = 65536


class ByteSource(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class ByteSink(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


# ---- handshake ---------------------------------------------------------------------

def accept_token(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + GUID).digest()).decode()


class HandshakeRefused(Exception):
    """A request that is not a websocket handshake we accept: answered as x/net does."""

    def __init__(self, message: str, extra_headers: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.extra_headers = extra_headers

    def head(self) -> bytes:
        return ("HTTP/1.1 400 Bad Request\r\n" + "".join(h + "\r\n" for h in self.extra_headers)
                + "\r\n" + self.message).encode("latin-1")


@dataclass(frozen=True)
class Handshake:
    accept: str
    protocol: str | None = None

    def head(self) -> bytes:
        """The 101 answer, byte for byte as x/net writes it."""
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Accept: {self.accept}"]
        if self.protocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {self.protocol}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def server_handshake(headers: Mapping[str, str]) -> Handshake:
    """Check a GET request's headers (lower-case names); HandshakeRefused if not a
    websocket handshake. The Origin is not checked, as dockerd does not."""
    if headers.get("upgrade", "").strip().lower() != "websocket" \
            or "upgrade" not in headers.get("connection", "").lower():
        raise HandshakeRefused("not websocket protocol")
    key = headers.get("sec-websocket-key", "").strip()
    if not key:
        raise HandshakeRefused("mismatch challenge/response")
    if headers.get("sec-websocket-version", "").strip() != "13":
        raise HandshakeRefused("missing or bad WebSocket Version",
                               ("Sec-WebSocket-Version: 13",))
    offered = headers.get("sec-websocket-protocol", "").strip()
    protocols = [p.strip() for p in offered.split(",")] if offered else []
    if len(protocols) > 1:
        raise HandshakeRefused("")
    return Handshake(accept_token(key), protocols[0] if protocols else None)


# ---- framing -----------------------------------------------------------------------

def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (what a server sends)."""
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack(">BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
    return head + payload


def unmask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """XOR `data` with the 4-byte masking key, starting `offset` bytes into the payload."""
    if not data:
        return data
    k = key[offset % 4:] + key[:offset % 4]
    n = len(data)
    stream = (k * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class ProtocolError(Exception):
    pass


@dataclass
class _Frame:
    fin: bool
    opcode: int
    length: int
    mask: bytes


@dataclass
class WebSocket:
    """The server end of one websocket (see the module doc)."""

    source: ByteSource
    sink: ByteSink
    binary: bool = True                 # data frames sent as binary (else text)
    peer_closed: bool = False           # the client sent a close frame
    _buf: bytearray = field(default_factory=bytearray)
    _eof: bool = False
    _close_sent: bool = False
    _in_message: bool = False           # inside a fragmented message
    _left: int = 0                      # payload bytes left in the current data frame
    _mask: bytes = b"\0\0\0\0"
    _pos: int = 0                       # payload bytes of the current frame read so far

    # ---- output --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send `data` as one data frame (nothing once a close frame went out)."""
        if data and not self._close_sent:
            self.sink.write(encode_frame(OP_BINARY if self.binary else OP_TEXT, data))

    async def drain(self) -> None:
        await self.sink.drain()

    def close(self, code: int = CLOSE_NORMAL) -> None:
        """Send the close frame (once)."""
        if not self._close_sent:
            self._close_sent = True
            self.sink.write(encode_frame(OP_CLOSE, struct.pack(">H", code)))

    # ---- input ---------------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` payload bytes of the client's data frames; b"" at the end (a close
        frame, EOF, or a protocol error, answered with close 1002)."""
        try:
            while not self._eof:
                if self._left:
                    return await self._payload(n)
                frame = await self._frame()
                if frame is None:
                    break
                if frame.opcode >= OP_CLOSE:
                    await self._control(frame)
                    continue
                self._left, self._mask, self._pos = frame.length, frame.mask, 0
                self._in_message = not frame.fin
        except ProtocolError:
            self._eof = True
            self.close(CLOSE_PROTOCOL_ERROR)
        except (ConnectionError, OSError):
            self._eof = True
        return b""

    async def _more(self) -> bool:
        data = await self.source.read(_READ)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def _exact(self, n: int) -> bytes | None:
        while len(self._buf) < n:
            if not await self._more():
                return None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def _payload(self, n: int) -> bytes:
        if not self._buf and not await self._more():
            return b""
        take = min(self._left, len(self._buf), n if n > 0 else self._left)
        data = unmask(bytes(self._buf[:take]), self._mask, self._pos)
        del self._buf[:take]
        self._left -= take
        self._pos += take
        return data

    async def _frame(self) -> _Frame | None:
        head = await self._exact(2)
        if head is None:
            return None
        fin, rsv, opcode = bool(head[0] & 0x80), head[0] & 0x70, head[0] & 0x0F
        masked, length = bool(head[1] & 0x80), head[1] & 0x7F
        if rsv or not masked or opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY,
                                               OP_CLOSE, OP_PING, OP_PONG):
            raise ProtocolError("bad frame header")
        if opcode >= OP_CLOSE and (not fin or length > _MAX_CONTROL):
            raise ProtocolError("bad control frame")
        if opcode == OP_CONTINUATION and not self._in_message \
                or opcode in (OP_TEXT, OP_BINARY) and self._in_message:
            raise ProtocolError("bad fragmentation")
        if length >= 126:
            ext = await self._exact(2 if length == 126 else 8)
            if ext is None:
                return None
            length = struct.unpack(">H" if len(ext) == 2 else ">Q", ext)[0]
            if length >> 63:
                raise ProtocolError("bad length")
        mask = await self._exact(4)
        if mask is None:
            return None
        return _Frame(fin, opcode, length, mask)

    async def _control(self, frame: _Frame) -> None:
        raw = await self._exact(frame.length)
        if raw is None:
            return
        payload = unmask(raw, frame.mask)
        if frame.opcode == OP_PING:
            if not self._close_sent:
                self.sink.write(encode_frame(OP_PONG, payload))
        elif frame.opcode == OP_CLOSE:
            self.peer_closed = True
            self._eof = True


async def wait_closed(ws: WebSocket) -> None:
    """Read and drop the client's data until it closes (keeps pings answered when
    nothing else reads the connection)."""
    while await ws.read(_READ):
        pass


__all__ = ["ByteSink", "ByteSource", "CLOSE_NORMAL", "CLOSE_PROTOCOL_ERROR", "Handshake",
           "HandshakeRefused", "WebSocket", "accept_token", "encode_frame",
           "server_handshake", "unmask", "wait_closed"]
