"""File wrappers for layer unpacking: progress reporting, zstd decompression."""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Protocol

from ..errors import InvalidParameter

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class SeekableReader(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...

    def seek(self, off: int, whence: int = os.SEEK_SET, /) -> int: ...

    def tell(self) -> int: ...


class ProgressReader:
    """Reads from a seekable file, reporting the bytes consumed (throttled)."""

    def __init__(self, raw: SeekableReader, report: Callable[[int], None]) -> None:
        self._raw = raw
        self._report = report
        self._last = 0.0

    def read(self, n: int = -1) -> bytes:
        b = self._raw.read(n)
        now = time.monotonic()
        if now - self._last > 0.1 or not b:
            self._last = now
            self._report(self._raw.tell())
        return b

    def seek(self, off: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(off, whence)

    def tell(self) -> int:
        return self._raw.tell()


class _Rewindable:
    """A forward-only stream whose first bytes can be re-read (for magic sniffing)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._pos = 0
        self._head = b""
        self._head_pos = 0

    def read(self, n: int = -1) -> bytes:
        out = b""
        if self._head_pos < len(self._head):
            take = self._head[self._head_pos:] if n < 0 else \
                self._head[self._head_pos:self._head_pos + n]
            self._head_pos += len(take)
            out = take
            if n >= 0 and len(out) >= n:
                self._pos += len(out)
                return out
            n = -1 if n < 0 else n - len(out)
        b = self._inner.read(n) if n != 0 else b""
        if self._pos < 64 and not self._head:
            self._head = out + b
            self._head_pos = len(self._head)
        self._pos += len(b) + len(out)
        return out + b

    def seek(self, off: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR and off <= 0 and -off <= self._head_pos:
            self._head_pos += off
            self._pos += off
            return self._pos
        raise OSError("stream is not seekable")

    def tell(self) -> int:
        return self._pos


def zstd_reader(src: Any) -> Any:
    try:
        import zstandard
    except ImportError:
        raise InvalidParameter("zstd-compressed layers need the zstandard package, "
                               "which is not installed") from None
    return _Rewindable(zstandard.ZstdDecompressor().stream_reader(src, read_size=1 << 20))
