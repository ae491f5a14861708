"""Reading container logs written by conmon (k8s-file: `<RFC3339Nano> stream F|P text`)."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from ..util.ids import to_unix_ns


@dataclass(frozen=True, slots=True)
class LogRecord:
    timestamp: str
    stream: str        # "stdout" | "stderr"
    data: bytes        # with its trailing newline when the line was complete


def parse_lines(raw: bytes, pending: dict[str, tuple[str, bytes]]) -> list[LogRecord]:
    """Parse complete k8s-file lines; partial (P) records are joined per stream."""
    out = []
    for line in raw.split(b"\n"):
        if not line:
            continue
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            continue
        ts, stream, tag = parts[0].decode(), parts[1].decode(), parts[2]
        text = parts[3] if len(parts) > 3 else b""
        if tag == b"P":
            prev = pending.get(stream)
            pending[stream] = (prev[0] if prev else ts, (prev[1] if prev else b"") + text)
            continue
        prev = pending.pop(stream, None)
        if prev:
            ts, text = prev[0], prev[1] + text
        out.append(LogRecord(ts, stream, text + b"\n"))
    return out


@dataclass
class LogQuery:
    stdout: bool = True
    stderr: bool = True
    since_ns: int = 0
    until_ns: int = 0
    tail: int = -1
    timestamps: bool = False
    follow: bool = False


def _wanted(rec: LogRecord, q: LogQuery) -> bool:
    if rec.stream == "stdout" and not q.stdout or rec.stream == "stderr" and not q.stderr:
        return False
    if q.since_ns or q.until_ns:
        t = to_unix_ns(rec.timestamp)
        if q.since_ns and t < q.since_ns:
            return False
        if q.until_ns and t > q.until_ns:
            return False
    return True


async def read_logs(path: str, q: LogQuery,
                    is_running: Callable[[], bool]) -> AsyncIterator[LogRecord]:
    """Yield the records of the log file; with follow, keep going until the container stops."""
    pending: dict[str, tuple[str, bytes]] = {}
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        if not q.follow:
            return
        while not os.path.exists(path):
            if not is_running():
                return
            await asyncio.sleep(0.05)
        f = open(path, "rb")
    with f:
        data = await asyncio.to_thread(f.read)
        cut = data.rfind(b"\n") + 1
        buf = data[cut:]
        records = [r for r in parse_lines(data[:cut], pending) if _wanted(r, q)]
        if q.tail >= 0:
            records = records[-q.tail:] if q.tail else []
        for r in records:
            yield r
        if not q.follow:
            return
        idle = 0.02
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                buf += chunk
                cut = buf.rfind(b"\n") + 1
                if cut:
                    for r in parse_lines(buf[:cut], pending):
                        if _wanted(r, q):
                            yield r
                    buf = buf[cut:]
                idle = 0.02
                continue
            if not is_running():
                # one last read: conmon may have flushed after we looked
                rest = buf + f.read()
                for r in parse_lines(rest, pending):
                    if _wanted(r, q):
                        yield r
                return
            await asyncio.sleep(idle)
            idle = min(idle * 2, 0.25)
