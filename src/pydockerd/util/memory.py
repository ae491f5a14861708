"""Give memory the daemon no longer uses back to the kernel (issue 10: idle RSS).

Start-up reads the whole store, parses every image config and builds the routes;
what it allocated and dropped stays in glibc's heap (and in its free lists) unless
trimmed. Called once the daemon is ready, and again after a burst of work is over."""
from __future__ import annotations

import ctypes
import gc
import logging

log = logging.getLogger("pydockerd")

_libc: ctypes.CDLL | None = None


def release_free_memory() -> None:
    """Collect cyclic garbage, then return glibc's free heap pages to the kernel."""
    global _libc
    gc.collect()
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None)
        _libc.malloc_trim(0)
    except (OSError, AttributeError) as e:     # not glibc (musl has no malloc_trim)
        log.debug("malloc_trim unavailable: %s", e)
