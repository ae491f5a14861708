"""Reading a file driver's logs back (`docker logs`, attach `logs=1`): the rotated
files oldest first (`.N.gz` ... `.1`), then the live file; `--tail` walks backwards
from the end and stops once it has enough lines (its cost does not grow with the
log); `-f` keeps reading the live file and, when it is rotated away (renamed: the
open descriptor still reads it to its end) or truncated (max-file 1), goes on
with the new file: no line is lost or read twice."""
from __future__ import annotations

import asyncio
import os
import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, BinaryIO, Callable, Iterator

from ..util.ids import to_unix_ns
from . import jsonfile, local
from .message import LogEntry
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import gzip
else:   # rotated compressed files: gzip loads with the first `docker logs` (idle memory)
    gzip = lazy_import("gzip")

_CHUNK = 1 << 20


@dataclass
class LogQuery:
    stdout: bool = True
    stderr: bool = True
    since_ns: int = 0
    until_ns: int = 0
    tail: int = -1
    timestamps: bool = False
    follow: bool = False


@dataclass(frozen=True)
class Format:
    parse: Callable[[bytes], tuple[list[LogEntry], int]]   # complete records, bytes used
    decode: Callable[[bytes], LogEntry | None]              # one record
    backward: bool          # records end with b"\n" (tail reads blocks backwards)


def _parse_local(buf: bytes) -> tuple[list[LogEntry], int]:
    recs, used = local.split_records(buf)
    return [e for e in map(local.decode, recs) if e is not None], used


FORMATS = {"json-file": Format(jsonfile.parse, jsonfile.decode, True),
           "local": Format(_parse_local, local.decode, False)}


class _Filter:
    def __init__(self, q: LogQuery) -> None:
        self.q = q
        self.timed = bool(q.since_ns or q.until_ns)

    @property
    def everything(self) -> bool:
        return self.q.stdout and self.q.stderr and not self.timed

    def __call__(self, e: LogEntry | None) -> bool:
        if e is None:
            return False
        q = self.q
        if e.stream == "stdout" and not q.stdout or e.stream == "stderr" and not q.stderr:
            return False
        if self.timed:
            t = to_unix_ns(e.time)
            if q.since_ns and t < q.since_ns or q.until_ns and t > q.until_ns:
                return False
        return True


def rotated_files(path: str) -> list[str]:
    """`path.N[.gz]` ... `path.1[.gz]`, oldest first (a `.i` being compressed wins)."""
    d, base = os.path.split(path)
    found: dict[int, str] = {}
    rx = re.compile(re.escape(base) + r"\.(\d+)(\.gz)?$")
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    for n in names:
        m = rx.match(n)
        if m and not (m.group(2) and int(m.group(1)) in found):
            found[int(m.group(1))] = os.path.join(d, n)
    return [found[i] for i in sorted(found, reverse=True)]


def _open_any(path: str) -> BinaryIO | None:
    try:
        f: BinaryIO = open(path, "rb")
    except FileNotFoundError:
        return None
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def _forward(f: BinaryIO, fmt: Format, keep: _Filter) -> Iterator[list[LogEntry]]:
    buf = b""
    while chunk := f.read(_CHUNK):
        buf = buf + chunk if buf else chunk
        out, used = fmt.parse(buf)
        buf = buf[used:]
        if not keep.everything:
            out = [e for e in out if keep(e)]
        if out:
            yield out
    if buf and not isinstance(f, gzip.GzipFile):
        f.seek(-len(buf), os.SEEK_CUR)     # a record still being written: follow reads it


def _tail_lines(f: BinaryIO, n: int, fmt: Format, keep: _Filter) -> list[LogEntry]:
    """The last `n` wanted entries of a plain newline-framed file, read backwards."""
    end = f.seek(0, os.SEEK_END)
    found: deque[LogEntry] = deque()
    rest = b""
    pos = end
    while pos > 0 and len(found) < n:
        step = min(_CHUNK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step) + rest
        first = block.find(b"\n") + 1 if pos > 0 else 0
        rest = block[:first]
        lines = block[first:].split(b"\n")
        for line in reversed(lines):
            if line:
                e = fmt.decode(line)
                if keep(e):
                    assert e is not None
                    found.appendleft(e)
                    if len(found) >= n:
                        break
    return list(found)


def _collect(path: str, fd_ino: int, fmt: Format, q: LogQuery, f: BinaryIO | None) -> \
        Iterator[list[LogEntry]]:
    """(worker thread, a step a batch) Everything before following: rotated files,
    then the live one; a batch (one read) at a time, so the first lines go out while
    the rest is read and a long log is never all in memory."""
    keep = _Filter(q)
    old = [p for p in rotated_files(path)
           if not (not p.endswith(".gz") and _ino(p) == fd_ino)]
    if q.tail == 0:
        if f is not None:
            f.seek(0, os.SEEK_END)
        return
    if q.tail > 0 and fmt.backward:
        got: list[LogEntry] = []
        if f is not None:
            got = _tail_lines(f, q.tail, fmt, keep)
            f.seek(0, os.SEEK_END)
        for p in reversed(old):          # older files, newest first, while short
            if len(got) >= q.tail:
                break
            g = _open_any(p)
            if g is not None:
                with g:
                    if isinstance(g, gzip.GzipFile):     # a stream: read it through
                        older = [e for batch in _forward(g, fmt, keep) for e in batch]
                    else:                               # backwards, as the live file
                        older = _tail_lines(g, q.tail - len(got), fmt, keep)
                got = older[max(0, len(older) - (q.tail - len(got))):] + got
        yield got
        return
    if q.tail > 0:                       # local: forward, keeping the last entries
        last: deque[LogEntry] = deque(maxlen=q.tail)
        for p in old:
            g = _open_any(p)
            if g is not None:
                with g:
                    for batch in _forward(g, fmt, keep):
                        last.extend(batch)
        if f is not None:
            f.seek(0)
            for batch in _forward(f, fmt, keep):
                last.extend(batch)
        yield list(last)
        return
    for p in old:
        g = _open_any(p)
        if g is not None:
            with g:
                yield from _forward(g, fmt, keep)
    if f is not None:
        f.seek(0)
        yield from _forward(f, fmt, keep)


def _ino(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return -1


async def read_entries(path: str, driver: str, q: LogQuery, active: Callable[[], bool],
                       changed: Callable[[float], Awaitable[None]],
                       feed: deque[BinaryIO] | None = None) -> AsyncIterator[list[LogEntry]]:
    """Batches of entries; with `q.follow`, until the container stops and its
    pipeline has written everything (`active()` false) and the file is read."""
    fmt = FORMATS[driver]
    f = _open_any(path)
    while f is None and q.follow and active():
        await changed(0.1)
        f = _open_any(path)
    step: asyncio.Future[list[LogEntry] | None] | None = None
    try:
        ino = os.fstat(f.fileno()).st_ino if f is not None else -1
        batches = _collect(path, ino, fmt, q, f)
        step = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
        while True:
            batch = await asyncio.shield(step)      # a cancel leaves the thread's step be
            if batch is None:
                step = None
                break
            # the next batch is read while this one is sent
            step = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
            if batch:
                yield batch
        if not q.follow or f is None:
            return
        keep = _Filter(q)
        buf = b""
        while True:
            ended = not active()
            chunk = await asyncio.to_thread(f.read, _CHUNK)
            if chunk:
                buf += chunk
                out, used = fmt.parse(buf)
                buf = buf[used:]
                out = [e for e in out if keep(e)]
                if out:
                    yield out
                continue
            nxt = _next_file(feed, ino)
            if nxt is not None:          # rotated: the pipeline opened the next file for us
                rest = buf + await asyncio.to_thread(f.read)    # the old one is complete
                out, _ = fmt.parse(rest)
                out = [e for e in out if keep(e)]
                if out:
                    yield out
                f.close()
                f, ino, buf = nxt, os.fstat(nxt.fileno()).st_ino, b""
                continue
            st = _stat(path)
            pos = f.tell()
            if st is not None and st.st_ino == ino and st.st_size < pos:
                f.seek(0)                # truncated in place (max-file 1)
                buf = b""
                continue
            if st is not None and st.st_ino != ino and not feed:
                f.close()                  # rotated (renamed or truncated): the new file
                nf = _open_any(path)
                if nf is None:
                    f = open(os.devnull, "rb")
                    continue
                f, ino, buf = nf, os.fstat(nf.fileno()).st_ino, b""
                continue
            if ended:
                return
            await changed(0.25)
    finally:
        if f is not None:
            if step is not None and not step.done():
                # the reader went away while a step runs in its thread: close after it
                step.add_done_callback(_closer(f))
            else:
                f.close()


def _closer(f: BinaryIO) -> Callable[[asyncio.Future[list[LogEntry] | None]], None]:
    def close(step: asyncio.Future[list[LogEntry] | None]) -> None:
        if not step.cancelled():
            step.exception()             # retrieved: no "never retrieved" warning
        f.close()
    return close


def _next_file(feed: deque[BinaryIO] | None, ino: int) -> BinaryIO | None:
    """The next live file the follower has not read (the one it reads is skipped)."""
    while feed:
        g = feed.popleft()
        if os.fstat(g.fileno()).st_ino != ino:
            return g
        g.close()
    return None


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None
