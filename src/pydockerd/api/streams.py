"""Stream helpers: stdcopy multiplexing, JSON-lines progress, attach pumps."""
from __future__ import annotations

import asyncio
import struct
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol, Sequence, TypeVar
from urllib.parse import quote_plus

from ..logdrivers.goformat import fixed_nano
from ..logdrivers.message import LogEntry

from ..util.tasks import cancel_and_wait

T = TypeVar("T")

STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}


class Sink(Protocol):
    """Where a pump writes output: an asyncio.StreamWriter, or a websocket (api/websocket)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


_HEADER = struct.Struct(">BxxxL").pack
_IDS = {"stdout": 1, "stderr": 2}


def frame(stream: str, data: bytes) -> bytes:
    """One stdcopy frame: [stream, 0, 0, 0, size(be32)] + data."""
    return _HEADER(STREAM_IDS[stream], len(data)) + data


def log_frames(entries: Sequence[LogEntry], tty: bool, timestamps: bool,
               details: bool) -> bytes:
    """Log entries as `docker logs` gets them: raw with a TTY, else stdcopy frames;
    `timestamps`: RFC3339Nano with 9 digits first; `details`: the attrs
    (`k=v,...`, query-escaped, sorted) first, as dockerd's daemon/logs.go."""
    if not (tty or timestamps or details):        # the common case, kept lean
        return b"".join([_HEADER(_IDS[e.stream], len(e.data)) + e.data for e in entries])
    out = []
    for e in entries:
        data = e.data
        if details:
            data = ",".join(f"{quote_plus(k)}={quote_plus(v)}"
                            for k, v in sorted(e.attrs)).encode() + b" " + data
        if timestamps:
            data = fixed_nano(e.time).encode() + b" " + data
        out.append(data if tty else frame(e.stream, data))
    return b"".join(out)


def parse_detach_keys(spec: str | None) -> bytes:
    """`ctrl-p,ctrl-q` -> b"\\x10\\x11" (Docker's default)."""
    if not spec:
        return b"\x10\x11"
    out = bytearray()
    for key in spec.split(","):
        key = key.strip().lower()
        if key.startswith("ctrl-") and len(key) == 6:
            ch = key[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch == "@":
                out.append(0)
            elif ch in "[\\]^_":
                out.append(27 + "[\\]^_".index(ch))
            else:
                raise ValueError(f"Invalid escape key: {key}")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise ValueError(f"Invalid escape keys ({spec}) provided")
    return bytes(out)


class DetachScanner:
    """Watches stdin for the detach key sequence."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Return (bytes to forward, detach?)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            if b == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    return bytes(out), True
                continue
            if self.matched:
                out += self.keys[:self.matched]
                self.matched = 0
                if b == self.keys[0]:
                    self.matched = 1
                    continue
            out.append(b)
        return bytes(out), False


async def pump_input(reader: Any, send: Callable[[bytes], Awaitable[None]],
                     close: Callable[[], None], detach_keys: bytes | None) -> bool:
    """Copy the client's stdin to `send` until EOF; True if the user detached."""
    scanner = DetachScanner(detach_keys) if detach_keys is not None else None
    while True:
        try:
            data = await reader.read(32768)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            close()
            return False
        detach = False
        if scanner is not None:
            data, detach = scanner.feed(data)
        if data:
            try:
                await send(data)
            except (ConnectionError, OSError):
                return False
        if detach:
            return True


async def write_output(writer: Sink,
                       chunks: AsyncIterator[tuple[str, bytes]], tty: bool,
                       want: set[str]) -> None:
    async for stream, data in chunks:
        if stream not in want:
            continue
        writer.write(data if tty else frame(stream, data))
        await writer.drain()


Stdin = tuple[Callable[[bytes], Awaitable[None]], Callable[[], None]]


async def pump_hijacked(reader: Any, writer: Sink,
                        output: AsyncIterator[tuple[str, bytes]], *, tty: bool,
                        want: set[str], stdin: Stdin | None = None,
                        detach_keys: bytes | None = None) -> bool:
    """Serve one hijacked attach or exec connection: `output` goes to the client (raw
    for a TTY, stdcopy frames otherwise, only the streams in `want`) and, with
    `stdin` = (send, close), the client's input goes to the process. Ends when the
    output ends or the client detaches with its keys (then returns True)."""
    in_task = asyncio.ensure_future(pump_input(reader, stdin[0], stdin[1], detach_keys)) \
        if stdin is not None else None
    out_task = asyncio.ensure_future(write_output(writer, output, tty, want))
    try:
        waits: set[asyncio.Future[Any]] = {out_task}
        if in_task is not None:
            waits.add(in_task)
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if in_task is not None and in_task in done and in_task.result():
            return True
        await out_task
        return False
    finally:
        await cancel_and_wait(in_task, out_task)


class _AttachSession(Protocol):
    async def send(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def output(self) -> AsyncIterator[tuple[str, bytes]]: ...


async def pump_attach(reader: Any, writer: Sink, session: _AttachSession, *, raw: bool,
                      tty: bool, stdin_once: bool, use_stdin: bool, want: set[str],
                      keys: bytes,
                      client_gone: Callable[[], Awaitable[Any]] | None = None) -> bool:
    """Serve a container attach as dockerd's stream.CopyStreams does: the detach keys
    count only with a TTY; when the client's stdin ends, a StdinOnce container without
    a TTY gets EOF on its stdin and its output goes on, otherwise the attach ends.
    `raw`: output unframed; `client_gone()` ends the attach when the client leaves
    while nothing reads its input. True if the user detached."""
    input_ended = asyncio.Event()

    def end_input() -> None:
        if stdin_once and not tty:
            session.close_stdin()
        else:
            input_ended.set()
    stdin = (session.send, end_input) if use_stdin else None
    pump = asyncio.ensure_future(pump_hijacked(
        reader, writer, session.output(), tty=raw, want=want, stdin=stdin,
        detach_keys=keys if tty else None))
    watcher = asyncio.ensure_future(
        input_ended.wait() if stdin is not None or client_gone is None else client_gone())
    try:
        done, _ = await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
        return pump in done and bool(pump.result())
    finally:
        await cancel_and_wait(pump, watcher)


class _Closable(Protocol):
    def close(self) -> None: ...


async def open_session(attach: Awaitable[T], running: bool) -> asyncio.Future[T]:
    """Start an attach request's session: made at once for a running container, or
    when the container starts. The future belongs to the request (release_session
    ends it when the connection ends); a running container's is awaited briefly here
    so the session exists before the response is sent."""
    fut = asyncio.ensure_future(attach)
    if running:
        try:
            await asyncio.wait([fut], timeout=2)
        except BaseException:
            await release_session(fut)
            raise
    return fut


async def release_session(fut: asyncio.Future[Any] | None) -> None:
    """End an attach request's session future: cancel and await it when still
    pending, close the session it made when nobody took it (close is idempotent)."""
    if fut is None:
        return
    await cancel_and_wait(fut)
    if not fut.cancelled() and fut.exception() is None:
        session: _Closable = fut.result()
        session.close()
