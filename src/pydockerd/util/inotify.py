"""Change notifications for directories: one inotify descriptor on the event loop.

Used where something would otherwise poll a directory: the log tailers (one per
running container) sleep until conmon writes their spool instead of waking five
times a second each, so an idle daemon with 1,000 containers costs no CPU.
A callback gets the name of the entry that changed, or "" when the kernel's
queue overflowed (anything may have changed). `watch` returns False when
inotify is not available (limits reached): the caller keeps polling then.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import struct
from typing import Callable

log = logging.getLogger("pydockerd.inotify")

IN_MODIFY = 0x002
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")          # wd, mask, cookie, len; then len bytes of name

_libc = ctypes.CDLL(None, use_errno=True)

Callback = Callable[[str], None]


class DirWatcher:
    """inotify watches of directories, each with one callback (event-loop thread only)."""

    def __init__(self, mask: int = IN_MODIFY | IN_CREATE | IN_MOVED_TO) -> None:
        self._mask = mask
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_wd: dict[int, str] = {}
        self._by_path: dict[str, tuple[int, Callback]] = {}

    def _open(self) -> bool:
        if self._fd >= 0:
            return True
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            log.warning("inotify unavailable (%s): polling instead",
                        os.strerror(ctypes.get_errno()))
            return False
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read)
        return True

    def watch(self, path: str, callback: Callback) -> bool:
        """Call `callback(name)` on every change in directory `path`; False: not watched."""
        if not self._open():
            return False
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), self._mask)
        if wd < 0:
            err = ctypes.get_errno()
            log.debug("no inotify watch on %s: %s", path, os.strerror(err))
            return False
        self._by_wd[wd] = path
        self._by_path[path] = (wd, callback)
        return True

    def unwatch(self, path: str) -> None:
        entry = self._by_path.pop(path, None)
        if entry is None:
            return
        wd = entry[0]
        if self._by_wd.get(wd) == path:
            del self._by_wd[wd]
            _libc.inotify_rm_watch(self._fd, wd)     # EINVAL if the directory is gone

    def is_watching(self, path: str) -> bool:
        return path in self._by_path

    def _read(self) -> None:
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if not buf:
                return
            self._dispatch(buf)

    def _dispatch(self, buf: bytes) -> None:
        pos = 0
        while pos + _EVENT.size <= len(buf):
            wd, mask, _cookie, n = _EVENT.unpack_from(buf, pos)
            name = buf[pos + _EVENT.size:pos + _EVENT.size + n].rstrip(b"\0").decode(
                errors="surrogateescape")
            pos += _EVENT.size + n
            if mask & IN_Q_OVERFLOW:
                for _wd, cb in list(self._by_path.values()):
                    cb("")
                continue
            path = self._by_wd.get(wd)
            if path is None:
                continue
            if mask & IN_IGNORED:                # the directory went away
                del self._by_wd[wd]
                entry = self._by_path.get(path)
                if entry is not None and entry[0] == wd:
                    del self._by_path[path]
                    entry[1]("")
                continue
            self._by_path[path][1](name)

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._by_wd.clear()
        self._by_path.clear()
