"""Give memory the daemon no longer uses back to the kernel (issue 10: idle RSS).

Start-up reads the whole store, parses every image config and builds the routes;
a burst of work (a hundred `docker run`, a pull) allocates and drops much more.
What was freed stays in glibc's heaps unless trimmed: once the daemon is ready,
then when a burst of work ends (the event bus fell quiet), and once a minute (a
trim takes about 0.1 ms). glibc's heaps are kept to one (`limit_malloc_arenas`):
else each default-executor worker that allocates gets a heap of its own, whose
free pages and fragments add up after work."""
from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
from typing import Callable

log = logging.getLogger("pydockerd")

TRIM_INTERVAL = 60.0     # seconds between two trims however quiet the daemon is
QUIET = 1.0              # a burst of work has ended when nothing happened for this long
M_ARENA_MAX = -8         # glibc's mallopt parameter (malloc.h)

_libc: ctypes.CDLL | None = None


def _glibc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None)
    return _libc


def limit_malloc_arenas(arenas: int = 1) -> None:
    """Have glibc's malloc use `arenas` heaps for all threads (call it before any
    thread is started). An operator's MALLOC_ARENA_MAX wins."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        _glibc().mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError) as e:     # not glibc
        log.debug("mallopt unavailable: %s", e)


def release_free_memory(collect: bool = True) -> None:
    """Collect cyclic garbage (when `collect`), then return glibc's free heap pages
    (of every arena) to the kernel."""
    if collect:
        gc.collect()
    try:
        _glibc().malloc_trim(0)
    except (OSError, AttributeError) as e:     # not glibc (musl has no malloc_trim)
        log.debug("malloc_trim unavailable: %s", e)


class HeapTrimmer:
    """A timer on the event loop (no task, nothing to await at shutdown) that trims
    once `activity()` (a counter of work done: the events published) stopped
    moving for `quiet` seconds after it moved, and every `interval` anyway (during
    a long stretch of work too). A tick reads one counter; an idle daemon trims
    once a minute."""

    def __init__(self, activity: Callable[[], int] = lambda: 0,
                 interval: float = TRIM_INTERVAL, quiet: float = QUIET) -> None:
        self.interval = interval
        self.quiet = quiet
        self._activity = activity
        self._seen = 0
        self._worked = False          # activity since the last trim
        self._next_trim = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._seen = self._activity()
        self._next_trim = loop.time() + self.interval
        self._timer = loop.call_later(self.quiet, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        seen = self._activity()
        now = loop.time()
        moved = seen != self._seen      # work going on: trim when it stops
        if moved:
            self._seen = seen
            self._worked = True
        if now >= self._next_trim or (self._worked and not moved):
            release_free_memory(collect=False)     # the generational gc runs by itself
            self._worked = moved
            self._next_trim = now + self.interval
        self._timer = loop.call_later(self.quiet, self._tick)
