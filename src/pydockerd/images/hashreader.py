"""The diff id of a layer being unpacked (images/tarsafe.py): a stream wrapper that
hashes every byte read through it, past the first MiB in a thread of its own.

Blocking: used from the unpack's worker thread.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import IO, TYPE_CHECKING

from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    hashlib = lazy_import("hashlib")

log = logging.getLogger("pydockerd.images")

_HASH_INLINE = 1 << 20      # bytes of a layer hashed inline (no thread for small ones)
_HASH_QUEUE = 16            # pieces (<= 64 KiB each) waiting for the hash thread


class HashingReader:
    """Wraps a stream; hashes (and counts) every byte read through it. Past the
    first MiB the hashing goes to a thread of its own (hashlib drops the GIL), so
    the diff id's sha256, some half of a plain layer's unpack CPU, overlaps the
    inflate and the writes (200 MB layer: 0.25 s -> 0.15 s); at most
    _HASH_QUEUE pieces wait for it. `close()` (always) ends the thread. The
    thread's failure (a MemoryError) is kept, the queue still drained (no read
    waits for it), and raised by every read and hexdigest() after it, and by
    close() if nothing raised it yet; a thread that cannot start leaves the
    hashing inline."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.count = 0
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._raised = False

    def read(self, n: int = -1) -> bytes:
        self._raise()
        b = self._raw.read(n)
        self.count += len(b)
        if self._queue is not None:
            self._queue.put(b)
        elif self.count > _HASH_INLINE and b and self._start():
            assert self._queue is not None
            self._queue.put(b)
        else:
            self._hash.update(b)
        return b

    def _start(self) -> bool:
        q: queue.Queue[bytes | None] = queue.Queue(_HASH_QUEUE)
        t = threading.Thread(target=self._hash_all, args=(q,), name="layer-hash",
                             daemon=True)
        try:
            t.start()
        except RuntimeError:        # can't start new thread: hash inline
            log.debug("no thread for a layer's hash: hashed inline", exc_info=True)
            return False
        self._queue, self._thread = q, t
        return True

    def _hash_all(self, q: queue.Queue[bytes | None]) -> None:
        while (b := q.get()) is not None:
            if self._error is None:
                try:
                    self._hash.update(b)
                except BaseException as e:     # noqa: BLE001 - raised by the reader
                    self._error = e

    def _raise(self) -> None:
        if (e := self._error) is not None:
            self._raised = True
            raise e

    def drain(self, chunk: int) -> None:
        """Read (and hash) what is left, chunk bytes at a time."""
        while self.read(chunk):
            pass

    def hexdigest(self) -> str:
        self.close()
        self._raise()
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if not self._raised:        # a close() in a finally after it raised adds nothing
            self._raise()
