"""A small asyncio HTTP/1.1 client for what the daemon requests itself: registries
(distribution/), docker import <url> (images/fetch.py), remote build contexts and
ADD <url> (builder/remote.py), legacy plugins (plugins/client.py).

- TCP, TLS (the client's SSLContext; `tls=True` the default verified one, False one
  that verifies nothing, as aiohttp's ssl=False) or one unix socket for every URL;
- a keep-alive pool per client: an idle connection the server closed is dropped,
  and an idempotent request whose reused connection dies before any answer byte
  is sent once more on a new one;
- timeouts: connect (TCP + TLS), read (inactivity: no head, no body byte, or a
  request body the server does not take, for that long) and total (the whole
  exchange, both bodies included), each optional;
- response heads capped (1 MiB, 1000 lines), 1xx interim responses skipped, an
  answer that arrives mid-upload returned (the rest is not sent), and a connection
  that carried anything unexpected is not reused;
- redirects when asked (Authorization is dropped when the origin changes, as Go
  and aiohttp do), request bodies as bytes or async iterables (chunked unless the
  caller sets Content-Length), bodies read in chunks, to a limit, or as JSON;
- URLs: path and query percent-quoted (existing %xx kept), host IDNA-encoded,
  userinfo sent as Basic credentials; CR/LF in a header is refused;
- no proxies (aiohttp's trust_env was never set) and no content decoding.
Failures raise httpconn.HTTPError subclasses, re-exported here."""
from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, AsyncIterable, AsyncIterator, Iterable, Mapping,
                    overload)
from urllib.parse import quote, unquote, urljoin, urlsplit

from .httpconn import (ConnectError, Connection, HTTPError, InvalidURL, PayloadError,
                       ResponseTimeout, ServerDisconnected)
from .tlsdefer import ensure_ssl

if TYPE_CHECKING:
    import ssl

__all__ = ["HTTPClient", "Response", "Headers", "Timeouts", "basic_auth", "HTTPError",
           "ConnectError", "InvalidURL", "PayloadError", "ResponseTimeout",
           "ServerDisconnected"]

Body = bytes | AsyncIterable[bytes] | None
_REDIRECTS = (301, 302, 303, 307, 308)
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_MAX_IDLE = 8                     # idle connections kept per host
_SAFE = "/%:@!$&'()*+,;=?"        # kept as they are in a request target (%xx too)


@dataclass(frozen=True)
class Timeouts:
    connect: float | None = None
    read: float | None = None
    total: float | None = None


def basic_auth(username: str, password: str) -> str:
    """The Authorization value of HTTP Basic credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class Headers:
    """Response headers: case-insensitive, several values per name."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = list(items)
        self._map: dict[str, list[str]] = {}
        for name, value in self._items:
            self._map.setdefault(name.lower(), []).append(value)

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._map.get(name.lower())
        return values[0] if values else default

    def getall(self, name: str) -> list[str]:
        return list(self._map.get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


class Response:
    """A response whose head has arrived; the body is read from it. Use it as an
    async context manager (or call release()): a fully read body gives its
    connection back to the pool, an unread one closes it."""

    def __init__(self, client: HTTPClient, conn: Connection, method: str, url: str,
                 read_timeout: float | None, deadline: float | None) -> None:
        self._client = client
        self._conn: Connection | None = conn
        self.method, self.url = method, url
        self.status, self.reason = conn.status, conn.reason
        self.headers = Headers(conn.headers)
        self._read_timeout, self._deadline = read_timeout, deadline
        self._release_if_done()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.strip().isdigit() else None

    async def read_chunk(self, size: int = 1 << 18) -> bytes:
        """The next up to size body bytes; b"" at the end."""
        if self._conn is None:
            return b""
        data = await self._conn.read_body(size, _remaining(self._read_timeout,
                                                           self._deadline))
        self._release_if_done()
        return data

    async def iter_chunks(self, size: int = 1 << 18) -> AsyncIterator[bytes]:
        while data := await self.read_chunk(size):
            yield data

    async def read(self, limit: int = -1) -> bytes:
        """The body (its first `limit` bytes when limit >= 0)."""
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            data = await self.read_chunk(1 << 20 if limit < 0 else min(limit - got, 1 << 20))
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    async def json(self) -> Any:
        return json.loads(await self.read())

    def _release_if_done(self) -> None:
        if self._conn is not None and self._conn.reusable:
            self.release()

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._give_back(conn)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


def _remaining(timeout: float | None, deadline: float | None) -> float | None:
    if deadline is None:
        return timeout
    left = max(deadline - asyncio.get_running_loop().time(), 0.0)
    return left if timeout is None else min(timeout, left)


def _without(headers: dict[str, str], *names: str) -> dict[str, str]:
    drop = {n.lower() for n in names}
    return {k: v for k, v in headers.items() if k.lower() not in drop}


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    return u.scheme, (u.hostname or "").lower(), u.port


class HTTPClient:
    """Requests with a pool of keep-alive connections; close() when done."""

    def __init__(self, *, tls: ssl.SSLContext | bool = True, unix_path: str = "",
                 timeouts: Timeouts = Timeouts(), user_agent: str = "pydockerd") -> None:
        self._tls = tls
        self._context: ssl.SSLContext | None = None if isinstance(tls, bool) else tls
        self._unix_path = unix_path
        self.timeouts = timeouts
        self._user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._closed = False

    async def close(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        """close() for a caller outside a coroutine (a done callback): the idle
        connections are closed, and those in use once their response is over."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      data: Body = None, allow_redirects: bool = False,
                      timeouts: Timeouts | None = None, max_redirects: int = 10) -> Response:
        """Send the request; the response once its head has arrived."""
        t = timeouts or self.timeouts
        deadline = None if t.total is None else asyncio.get_running_loop().time() + t.total
        hdrs = dict(headers or {})
        for _ in range(max_redirects + 1):
            resp = await self._send(method, url, hdrs, data, t, deadline)
            location = resp.headers.get("Location")
            if not allow_redirects or resp.status not in _REDIRECTS or not location:
                return resp
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                data = None
                hdrs = _without(hdrs, "Content-Length", "Content-Type", "Transfer-Encoding")
            elif data is not None and not isinstance(data, bytes):
                return resp                   # a consumed stream cannot be sent again
            resp.release()
            target = urljoin(url, location)
            if _origin(target) != _origin(url):
                hdrs = _without(hdrs, "Authorization")
            url = target
        raise HTTPError(f"too many redirects ({max_redirects})")

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None,
                  allow_redirects: bool = False, timeouts: Timeouts | None = None) -> Response:
        return await self.request("GET", url, headers=headers, timeouts=timeouts,
                                  allow_redirects=allow_redirects)

    # --- one exchange ------------------------------------------------------------------
    async def _send(self, method: str, url: str, headers: dict[str, str], data: Body,
                    t: Timeouts, deadline: float | None) -> Response:
        try:
            u = urlsplit(url)
            port = u.port or (443 if u.scheme == "https" else 80)
            host = (u.hostname or "").encode("idna").decode("ascii")
        except (ValueError, UnicodeError) as e:
            raise InvalidURL(f"{url}: {e}") from None
        if u.scheme not in ("http", "https") or not host:
            raise InvalidURL(url)
        key = (u.scheme, host, port)
        target = quote(u.path or "/", _SAFE) + (f"?{quote(u.query, _SAFE)}" if u.query else "")
        hostport = (f"[{host}]" if ":" in host else host) + (f":{u.port}" if u.port else "")
        if u.username is not None and not any(k.lower() == "authorization" for k in headers):
            headers = {**headers, "Authorization": basic_auth(unquote(u.username),
                                                              unquote(u.password or ""))}
        head = self._head(method, target, hostport, headers, data)
        retry = method in _IDEMPOTENT and (data is None or isinstance(data, bytes))
        chunked = not (data is None or isinstance(data, bytes)
                       or any(k.lower() == "content-length" for k in headers))
        while True:
            conn = self._take(key) or await self._connect(key, t, deadline)
            try:
                conn.begin(method == "HEAD")
                try:
                    await self._write(conn, head, data, chunked, t, deadline)
                except ServerDisconnected:
                    if not conn.headers_done:
                        raise              # else: answered early, then closed
                await conn.read_head(_remaining(t.read, deadline))
            except ServerDisconnected:
                conn.close()
                if conn.reused and retry and not conn.got_bytes:
                    retry = False          # it died idle in the pool: once more, fresh
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return Response(self, conn, method, url, t.read, deadline)

    def _head(self, method: str, target: str, host: str, headers: dict[str, str],
              data: Body) -> bytes:
        names = {k.lower() for k in headers}
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        if "user-agent" not in names:
            lines.append(f"User-Agent: {self._user_agent}")
        if "accept" not in names:
            lines.append("Accept: */*")
        if isinstance(data, bytes):
            if "content-length" not in names:
                lines.append(f"Content-Length: {len(data)}")
        elif data is not None:
            if "content-length" not in names:
                lines.append("Transfer-Encoding: chunked")
        elif method in ("POST", "PUT", "PATCH") and "content-length" not in names:
            lines.append("Content-Length: 0")
        for k, v in headers.items():
            if any(c in k or c in v for c in "\r\n\0") or not k or ":" in k:
                raise HTTPError(f'net/http: invalid header field {k!r}')
            lines.append(f"{k}: {v}")
        try:
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError as e:
            raise HTTPError(f"net/http: invalid header field: {e}") from None

    @staticmethod
    async def _write(conn: Connection, head: bytes, data: Body, chunked: bool, t: Timeouts,
                     deadline: float | None) -> None:
        """Send the request; stop (the connection is then not reused) when the
        response head arrives first, e.g. a 413 or 401 in the middle of an upload."""
        if data is None or isinstance(data, bytes):
            small = len(data or b"") < 65536
            for part in [head + (data or b"")] if small else [head, data or b""]:
                await conn.write(part, _remaining(t.read, deadline))
            return
        await conn.write(head, _remaining(t.read, deadline))
        async for piece in data:
            if conn.abandoned:
                return
            if piece:
                await conn.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece,
                                 _remaining(t.read, deadline))
        if chunked:
            await conn.write(b"0\r\n\r\n", _remaining(t.read, deadline))

    # --- the pool ------------------------------------------------------------------------
    def _take(self, key: tuple[str, str, int]) -> Connection | None:
        conns = self._idle.get(key)
        while conns:
            conn = conns.pop()
            if not conn.closed and conn.transport is not None \
                    and not conn.transport.is_closing():
                return conn
        return None

    def _give_back(self, conn: Connection) -> None:
        conns = self._idle.setdefault(conn.key, [])
        if conn.reusable and not self._closed and len(conns) < _MAX_IDLE:
            conn.idle()
            conns.append(conn)
        else:
            conn.close()

    async def _connect(self, key: tuple[str, str, int], t: Timeouts,
                       deadline: float | None) -> Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(_remaining(t.connect, deadline)):
                if self._unix_path:
                    _, conn = await loop.create_unix_connection(
                        lambda: Connection(key), self._unix_path)
                else:
                    ctx = self._ssl_context() if scheme == "https" else None
                    _, conn = await loop.create_connection(
                        lambda: Connection(key), host, port, ssl=ctx,
                        server_hostname=host if ctx is not None else None)
        except TimeoutError:
            raise ResponseTimeout("connect") from None
        except OSError as e:
            raise ConnectError(self._unix_path or host, port, e, bool(self._unix_path)) from None
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        ensure_ssl()            # ssl is not loaded at idle (util/tlsdefer.py)
        import ssl
        if self._context is None:
            self._context = ssl.create_default_context()
            if self._tls is False:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        return self._context
