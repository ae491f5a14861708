"""Unpacking a layer while its blob downloads (pull.py).

dockerd downloads a layer blob to a file and unpacks it afterwards; pydockerd
unpacks it from the same file as it grows, so the unpack of a big layer ends
shortly after its download instead of starting then. download.py stays the one
writer of the file (retries, Range resumes, the running digest); the unpacker
reads it through a `Follower`:

- read(n) blocks until n bytes are in the file or the download is over, so the
  reader sees a plain file (short reads only at the end);
- the end of the file is reported only once the download is verified
  (`done`): an unpack that reads to the end (plain, gzip, bzip2, xz) cannot
  finish, and so cannot register its layer, before the blob's digest has been
  checked (a zstd reader may stop at its frame's end; its layer, verified
  against its diff id as every layer, is dropped with the pull if the blob
  then fails);
- a download that starts over from byte 0 (the registry ignored a Range, or a
  resumed blob failed its digest) makes the reader raise `Restarted`: what it
  read is void, and the pull unpacks from the finished file instead;
- a failed or cancelled download makes it raise `Abandoned`;
- `resumed` tells the pull that bytes came from a resumed request: an unpack
  that fails then waits for the digest's verdict (layerpull.py).

The unpack runs in a thread of its own (`in_own_thread`), not in asyncio's
shared worker pool, where readers waiting on downloads could otherwise take
every worker the downloads themselves need. `util/tasks.wait_out` awaits such a thread (or
any clean-up) to its end even through repeated cancellation, so a pull's
clean-up never runs while an unpack it abandoned may still register a layer.
"""
from __future__ import annotations

import asyncio
import os
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class Restarted(Exception):
    """The download started over: unpack again from the finished file."""


class Abandoned(Exception):
    """The download failed or was cancelled."""


class Follower:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._written = 0
        self._state = "open"            # open, done, restarted, abandoned
        self.resumed = False            # bytes came from a resumed (Range) request

    @classmethod
    def finished(cls, size: int) -> Follower:
        """A follower of a file already downloaded and verified (size bytes)."""
        f = cls()
        f.grew(size)
        f.done()
        return f

    # --- the download's side (any thread) ----------------------------------------
    def grew(self, size: int) -> None:
        with self._cond:
            self._written = size
            self._cond.notify_all()

    def resuming(self) -> None:
        """What comes next continues the file after a broken attempt: until the
        digest is checked, an unpack failing on it may be a transfer's fault."""
        self.resumed = True

    def restarted(self) -> None:
        self._set("restarted")

    @property
    def was_restarted(self) -> bool:
        return self._state == "restarted"

    def done(self) -> None:
        self._set("done")

    def abandon(self) -> None:
        """The pull gave up: the reader stops at its next read, even after `done`."""
        with self._cond:
            self._state = "abandoned"
            self._cond.notify_all()

    def _set(self, state: str) -> None:
        with self._cond:
            if self._state == "open":
                self._state = state
            self._cond.notify_all()

    # --- the reader's side -----------------------------------------------------------
    def open(self, path: str) -> FollowingReader:
        """A reader of path, which the download creates (opened at the first read)."""
        return FollowingReader(self, path)

    def wait_for(self, end: int) -> int:
        """Bytes readable up to `end` once they are there (fewer only at the end)."""
        with self._cond:
            while True:
                if self._state == "restarted":
                    raise Restarted()
                if self._state == "abandoned":
                    raise Abandoned("the layer download failed")
                if self._written >= end or self._state == "done":
                    return min(end, self._written)
                self._cond.wait()


class FollowingReader:
    """A read-only file over the growing blob (read, seek, tell, close)."""

    def __init__(self, follower: Follower, path: str) -> None:
        self._follower, self._path, self._fd, self._pos = follower, path, -1, 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = []
            while b := self.read(1 << 20):
                parts.append(b)
            return b"".join(parts)
        end = self._follower.wait_for(self._pos + n)
        if end <= self._pos:
            return b""
        if self._fd < 0:
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        b = os.pread(self._fd, end - self._pos, self._pos)
        if len(b) < end - self._pos:        # cut by a restart since wait_for: raises
            self._follower.wait_for(end)
        self._pos += len(b)
        return b

    def seek(self, off: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            off += self._pos
        elif whence != os.SEEK_SET:
            raise OSError("a growing blob can only seek from its start or position")
        if off < 0:
            raise OSError("negative seek position")
        self._pos = off
        return off

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FollowingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def in_own_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """fn() in a new thread; its result or exception in the returned future."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: object) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)  # type: ignore[arg-type]
        else:
            fut.set_exception(value)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result: object = fn()
            ok = True
        except BaseException as e:     # noqa: BLE001 - handed to the awaiting task
            result, ok = e, False
        try:
            loop.call_soon_threadsafe(settle, ok, result)
        except RuntimeError:            # the loop is closed (daemon exit)
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    return fut
