"""Give memory the daemon no longer uses back to the kernel (issue 10: idle RSS).

Start-up reads the whole store, parses every image config and builds the routes;
a burst of work (a hundred `docker run`, a pull) allocates and drops much more.
What was freed stays in glibc's heaps (one per thread that allocated: the default
executor's workers) unless trimmed: once the daemon is ready, then once a minute
(a trim takes about 0.1 ms)."""
from __future__ import annotations

import asyncio
import ctypes
import gc
import logging

log = logging.getLogger("pydockerd")

TRIM_INTERVAL = 60.0     # seconds between two trims

_libc: ctypes.CDLL | None = None


def release_free_memory(collect: bool = True) -> None:
    """Collect cyclic garbage (when `collect`), then return glibc's free heap pages
    (of every arena) to the kernel."""
    global _libc
    if collect:
        gc.collect()
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None)
        _libc.malloc_trim(0)
    except (OSError, AttributeError) as e:     # not glibc (musl has no malloc_trim)
        log.debug("malloc_trim unavailable: %s", e)


class HeapTrimmer:
    """A timer on the event loop (no task, nothing to await at shutdown) that trims
    every TRIM_INTERVAL."""

    def __init__(self, interval: float = TRIM_INTERVAL) -> None:
        self.interval = interval
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        release_free_memory(collect=False)     # the generational gc runs by itself
        self.start()
