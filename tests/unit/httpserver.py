"""A tiny scriptable HTTP/1.1 server on asyncio streams for the client tests (TCP
on 127.0.0.1 or a unix socket): a handler gets each request and returns the raw
bytes to answer with (the connection is closed after a `Connection: close` one),
or None to close the connection without an answer."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Awaitable, Callable


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]          # names lower-cased
    body: bytes
    conn: int                        # which connection (0, 1, ...) it came on
    index: int                       # its place on that connection


Handler = Callable[[Request], Awaitable[bytes | None]]


def response(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None,
             reason: str = "OK") -> bytes:
    h = {"Content-Length": str(len(body)), **(headers or {})}
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return head.encode() + b"\r\n" + body


def json_response(doc: object, status: int = 200) -> bytes:
    return response(status, json.dumps(doc).encode(), {"Content-Type": "application/json"})


@dataclass
class Server:
    handler: Handler
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    server: asyncio.AbstractServer | None = None
    port: int = 0

    async def start(self, unix_path: str = "") -> Server:
        if unix_path:
            self.server = await asyncio.start_unix_server(self._serve, unix_path)
        else:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        self.connections += 1
        try:
            for index in range(1 << 30):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = line.split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in
                           (x.split(":", 1) for x in lines if x)}
                req = Request(method, path, headers, await _body(reader, headers), conn, index)
                self.requests.append(req)
                answer = await self.handler(req)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if b"\r\nconnection: close\r\n" in answer.split(b"\r\n\r\n")[0].lower() + b"\r\n":
                    return
        finally:
            writer.close()


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", ""):
        out = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
            if size == 0:
                return out
    return await reader.readexactly(int(headers.get("content-length", "0")))
