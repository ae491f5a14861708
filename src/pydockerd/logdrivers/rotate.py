"""A log file rotated as moby's loggerutils.LogFile: before a write, when the file has
reached max-size, `<f>.N-1` goes, `<f>.i` becomes `<f>.i+1`, `<f>` becomes `<f>.1`
(then `<f>.1.gz` with compress: a gzip whose header Extra is `{"lastTime":...}`), and
a new `<f>` starts; with max-file 1 the file is truncated instead.

Writes are batched: `add` buffers encoded messages, `commit` writes them with one
write(2) (rotating first when due) and returns the position {ino, size} stored with
the pipeline's cursor. Reopening with that position truncates whatever was written
past it (a batch the cursor did not record), so the batch is written exactly once.
"""
from __future__ import annotations

import logging
import os
import struct
import zlib
from typing import Callable, Mapping

from .goformat import go_time
from .options import FileOptions

log = logging.getLogger("pydockerd.logs")

_FLUSH_AT = 1 << 20


def rotated_name(path: str, i: int, compress: bool) -> str:
    return f"{path}.{i}{'.gz' if compress else ''}"


class RotatingFile:
    def __init__(self, path: str, opts: FileOptions,
                 position: Mapping[str, int] | None = None,
                 on_open: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.opts = opts
        self.on_open = on_open      # told of every new live file (followers open it)
        if position:
            _recover(path, position)
        if opts.compress:
            _finish_compression(path)
        self.fd = -1
        self.ino = 0
        self.size = 0
        self._open(truncate=False)
        self._buf: list[bytes] = []
        self._room = self._room_left()     # bytes `add` takes before it asks for a commit
        self._last_time = ""       # of the last message written to the current file

    def _open(self, truncate: bool) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self.fd = os.open(self.path, flags | (os.O_TRUNC if truncate else 0), 0o640)
        st = os.fstat(self.fd)
        self.ino, self.size = st.st_ino, st.st_size
        if self.on_open is not None and st.st_size == 0:
            self.on_open(self.path)

    def _room_left(self) -> int:
        cap = self.opts.capacity
        return _FLUSH_AT if cap == -1 else min(_FLUSH_AT, cap - self.size)

    def add(self, data: bytes, time: str) -> bool:
        """Buffer one encoded message; True when a commit is due (the file reached
        max-size: the next write rotates; or the buffer is full)."""
        self._buf.append(data)
        self._room -= len(data)
        self._last_time = time
        return self._room <= 0

    def commit(self) -> dict[str, int]:
        if self._buf:
            if self.opts.capacity != -1 and self.size >= self.opts.capacity:
                self._rotate()
            data = b"".join(self._buf)
            self._buf.clear()
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            self.size += len(data)
            self._room = self._room_left()
        return {"ino": self.ino, "size": self.size}

    def _rotate(self) -> None:
        os.close(self.fd)
        n, gz = self.opts.max_files, self.opts.compress
        if n >= 2:
            try:
                os.unlink(rotated_name(self.path, n - 1, gz))
            except FileNotFoundError:
                pass
            for i in range(n - 1, 1, -1):
                try:
                    os.rename(rotated_name(self.path, i - 1, gz), rotated_name(self.path, i, gz))
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
            if gz:
                compress_file(f"{self.path}.1", self._last_time)
        self._open(truncate=True)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _recover(path: str, position: Mapping[str, int]) -> None:
    """Undo what was written after the cursor's position (see the module doc)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_ino != position.get("ino"):
        keep = 0               # rotated after the cursor: all of it is after the cursor
    else:
        keep = min(st.st_size, int(position.get("size", 0)))
    if st.st_size > keep:
        log.info("%s: dropping %d bytes written after the last cursor (written again)",
                 path, st.st_size - keep)
        os.truncate(path, keep)


def _finish_compression(path: str) -> None:
    """A rotation interrupted between the rename to `.1` and its compression."""
    plain, packed = f"{path}.1", f"{path}.1.gz"
    if not os.path.exists(plain):
        return
    if os.path.exists(packed):
        os.unlink(plain)
    else:
        compress_file(plain, "")


def compress_file(src: str, last_time: str) -> None:
    """`src` -> `src.gz` as moby's compressFile (header Extra {"lastTime": ...}); the
    .gz appears complete (written aside, renamed), then `src` goes."""
    extra = b'{"lastTime":"' + (go_time(last_time) if last_time else
                                "0001-01-01T00:00:00Z").encode() + b'"}'
    tmp = src + ".gz.tmp"
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    crc = size = 0
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        fo.write(b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", len(extra))
                 + extra)
        while chunk := fi.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            fo.write(comp.compress(chunk))
        fo.write(comp.flush())
        fo.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
    os.rename(tmp, src + ".gz")
    os.unlink(src)
