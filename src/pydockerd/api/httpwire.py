"""Reading HTTP/1.1 requests off the wire: httptools callbacks collected into
messages, with the size limits that turn oversized input into an answer.

Go's net/http (dockerd's server) refuses a request head (request line +
headers) above 1 MiB (+4 KiB slack) with 431 and a malformed one with 400; it
has no separate limit for the request target. pydockerd answers 414 for a
request target above MAX_TARGET (a query that large is never a real client's)
and 431 for a head above MAX_HEAD, both before reading further.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import httptools

from ..errors import DockerError

MAX_TARGET = 256 << 10      # request target (path + query), bytes
MAX_HEAD = 1 << 20          # request line + headers, bytes (Go's DefaultMaxHeaderBytes)
MAX_CHUNK_LINE = 4096       # a chunk size line with its extension and CRLF is shorter (Go's
                            # maxLineLength: readChunkLine refuses len(line) >= 4096)
# a whole size line shorter than MAX_CHUNK_LINE: its hex digits, anything, LF
_SIZE_LINE = re.compile(rb"(?=[^\n]{0,%d}\n)([0-9A-Fa-f]*)[^\n]*\n" % (MAX_CHUNK_LINE - 2))


class BadRequest(DockerError):
    """The bytes are not an HTTP/1.1 request: answered, then the connection closes."""

    status = 400


class UriTooLong(DockerError):
    status = 414


class HeadersTooLarge(DockerError):
    status = 431


REFUSALS = (BadRequest, UriTooLong, HeadersTooLarge)    # answered, then the connection closes


@dataclass
class Message:
    method: str = ""
    url: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    body: deque[bytes] = field(default_factory=deque)
    headers_done: bool = False
    complete: bool = False
    keep_alive: bool = True
    upgrade: bool = False           # its head ends the HTTP part of the connection
    refused: bool = False           # over a limit: answered with the refusal, never served
    head_bytes: int = 0
    body_length: int = -1           # its Content-Length; -1: chunked (or none seen yet)
    body_seen: int = 0              # body bytes parsed so far


class RequestParser:
    """Collects httptools callbacks into Message objects (pipelining-safe).

    feed() raises BadRequest, UriTooLong or HeadersTooLarge; a request head
    over a limit stops being stored (so memory stays bounded) and is refused
    after the chunk that crossed the limit.
    """

    def __init__(self) -> None:
        self.messages: deque[Message] = deque()
        self._cur: Message | None = None
        self._url_len = 0
        self._refusal: DockerError | None = None
        self.queued_body = 0        # body bytes parsed and not taken yet
        self._tail = b""            # a head's last bytes fed: its end may straddle two feeds
        self._skip = 0              # chunked: bytes of chunk data (+ CRLF) not fed yet
        self._line = b""            # chunked: the start of a size line not ended yet
        self._trailers = False      # chunked: the last chunk's line is fed
        self._p = httptools.HttpRequestParser(self)

    def feed_message(self, buf: bytes | bytearray, pos: int) -> int:
        """Feed bytes of buf from pos that belong to the current request and none
        after its end (so what a client sends after a request stays raw until it is
        served: a hijacked connection gets it); returns how many were fed. Raises
        as feed(), HttpParserUpgrade's offset counted from pos."""
        n = self._bound(buf, pos)
        piece = memoryview(buf)[pos:pos + n]
        try:
            self.feed(piece)
        finally:
            piece.release()         # buf may grow or shrink once this returns
        return n

    def _bound(self, buf: bytes | bytearray, pos: int) -> int:
        """How many bytes of buf from pos may belong to the current request."""
        cur = self._cur
        if cur is not None and cur.headers_done and not cur.complete:
            if cur.body_length >= 0:
                return max(cur.body_length - cur.body_seen, 1)
            if not self._trailers:
                return self._chunked_bound(buf, pos)
        # a head (or a chunked body's trailers) ends at "\n\r\n" or "\n\n": up to
        # the first place one can end
        tail = self._tail                # the last bytes fed before
        if tail[-1:] == b"\n" or tail[-2:] == b"\n\r":
            return 1                     # its end may be the next byte or two
        end = min(len(buf), pos + MAX_HEAD + 4)      # a longer head is refused anyway
        i = buf.find(b"\n\r\n", pos, end)
        j = buf.find(b"\n\n", pos, end if i < 0 else i + 2)   # (never past the first)
        if i < 0 and j < 0:
            return end - pos
        return (j + 2 if j >= 0 else i + 3) - pos

    def _chunked_bound(self, buf: bytes | bytearray, pos: int) -> int:
        """A chunked body is walked chunk by chunk, its data skipped by arithmetic
        (llhttp refuses any other framing: a hex size, an optional extension, CRLF,
        that many bytes, CRLF): up to the end of the zero-size chunk's line, after
        which come its trailers, up to the first blank line (cut as a head is).
        A size line whole in buf is matched in place (one regex call per chunk:
        ~0.3 us per chunk); a line cut by the end of the read is kept in _line."""
        end, n = pos, len(buf)
        while end < n:
            if self._skip:               # chunk data and its CRLF
                step = min(self._skip, n - end)
                self._skip -= step
                end += step
                continue
            m = None if self._line else _SIZE_LINE.match(buf, end)
            if m is not None:
                end = m.end()
            else:
                k = buf.find(b"\n", end, end + MAX_CHUNK_LINE)
                line_end = min(n, end + MAX_CHUNK_LINE) if k < 0 else k + 1
                self._line += buf[end:line_end]
                end = line_end
                if len(self._line) >= MAX_CHUNK_LINE:
                    raise BadRequest("malformed chunked encoding: chunk size line too long")
                if k < 0:
                    break
                m = _SIZE_LINE.match(self._line)     # the whole line, now in _line
                self._line = b""
            size = int(m.group(1) or b"0", 16) if m else 0   # no digit: llhttp refuses it
            if size == 0:                # the last chunk: trailers follow
                self._trailers = True
                break
            end += size + 2              # its data and CRLF, maybe past this read
            if end > n:
                self._skip, end = end - n, n
        return end - pos

    def feed(self, data: bytes | memoryview) -> None:
        """Parse bytes; raises httptools.HttpParserUpgrade at an upgrade request's head."""
        self._tail = bytes(data[-2:]) if len(data) >= 2 else self._tail[-1:] + bytes(data)
        try:
            self._p.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._raise_refusal()
            if self.messages:
                msg = self.messages[-1]
                msg.upgrade = True
                if "transfer-encoding" in msg.headers:
                    # llhttp stops at the head: the chunk framing would start the
                    # hijacked stream (Go's hijack drops what its reader buffered)
                    msg.refused = True
                    raise BadRequest("a chunked body on an upgrade (hijack) request is "
                                     "not supported: send it with a Content-Length") from None
            raise
        except httptools.HttpParserError as e:
            self._raise_refusal()
            raise BadRequest(f"malformed HTTP request: {e}") from None
        self._raise_refusal()

    def take_body(self, msg: Message) -> bytes:
        """The next queued piece of `msg`'s body (b"" when none is queued)."""
        if not msg.body:
            return b""
        chunk = msg.body.popleft()
        self.queued_body -= len(chunk)
        return chunk

    def _raise_refusal(self) -> None:
        if self._refusal is not None:
            raise self._refusal

    # --- httptools callbacks --------------------------------------------------------
    def on_message_begin(self) -> None:
        self._cur = Message()
        self._url_len = 0
        self.messages.append(self._cur)

    def on_url(self, url: bytes) -> None:
        assert self._cur
        self._url_len += len(url)
        self._cur.head_bytes += len(url)
        if self._url_len <= MAX_TARGET:
            self._cur.url += url
        elif self._refusal is None:
            self._cur.refused = True
            self._refusal = UriTooLong(f"request URI too long: more than {MAX_TARGET} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._cur
        self._cur.head_bytes += len(name) + len(value) + 4
        if self._cur.head_bytes > MAX_HEAD:
            if self._refusal is None:
                self._cur.refused = True
                self._refusal = HeadersTooLarge(
                    "request header fields too large: the request line and headers "
                    f"exceed {MAX_HEAD} bytes")
            return
        if self._cur.headers_done:  # a chunked body's trailer: bounded, never stored
            return                  # (Go keeps them apart, in r.Trailer; dockerd never reads them)
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        if key in self._cur.headers:
            self._cur.headers[key] += ", " + val
        else:
            self._cur.headers[key] = val

    def on_headers_complete(self) -> None:
        assert self._cur
        self._cur.method = self._p.get_method().decode()
        self._cur.keep_alive = self._p.should_keep_alive()
        self._cur.headers_done = True
        if "transfer-encoding" not in self._cur.headers:
            try:
                self._cur.body_length = int(self._cur.headers.get("content-length") or 0)
            except ValueError:      # the parser refuses it
                pass

    def on_body(self, body: bytes) -> None:
        assert self._cur
        self._cur.body.append(bytes(body))
        self._cur.body_seen += len(body)
        self.queued_body += len(body)

    def on_message_complete(self) -> None:
        assert self._cur
        self._cur.complete = True
        self._tail = b""
        self._skip, self._line, self._trailers = 0, b"", False


def split_target(target: bytes) -> tuple[str, str]:
    """A request target -> (percent-decoded path, raw query string).

    Origin form (`/path?query`) as every client sends it, and absolute form
    (`http://host/path?query`). A NUL byte in the path is refused here: no
    route takes one and the OS would refuse it later.
    """
    raw = target.decode("latin-1")
    if not raw.startswith("/"):
        if raw == "*":
            raise BadRequest("malformed HTTP request: no path")
        parts = urlsplit(raw)
        raw = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    path, _, query = raw.partition("?")
    path = path.partition("#")[0]
    query = query.partition("#")[0]
    decoded = unquote(path.encode("latin-1").decode("utf-8", "replace"))
    if "\x00" in decoded:
        raise BadRequest("invalid request path: contains a NUL byte")
    return decoded or "/", query
