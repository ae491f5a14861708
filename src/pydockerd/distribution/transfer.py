"""What dockerd's transfer manager (moby distribution/xfer) decides for every layer
transfer: how many run at once, which failures are worth another attempt, and the
back-off between attempts."""
from __future__ import annotations

import asyncio
import errno
from typing import Callable

from ..errors import InvalidParameter
from ..progress import LayerStatus, ProgressEvent
from .client import RegistryError, TransportError

Emit = Callable[[ProgressEvent], None]

# moby xfer/download.go: attempt n failed -> wait n * 5 s ("Retrying in N seconds")
RETRY_STEP_SECONDS = 5

# moby distribution/errors.go retryOnError: errcode errors never worth repeating
_FINAL_CODES = frozenset({"UNAUTHORIZED", "UNSUPPORTED", "DENIED", "TOOMANYREQUESTS",
                          "NAME_UNKNOWN", "BLOB_UNKNOWN"})


class Limiter:
    """At most `limit()` holders at once, daemon-wide (0: no limit, as moby's
    transfer manager). The limit is read whenever a slot is asked for, so a
    SIGHUP-reloaded value applies to the next transfer."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._active = 0
        self._cond = asyncio.Condition()

    def _free(self) -> bool:
        n = self._limit()
        return n <= 0 or self._active < n

    def busy(self) -> bool:
        """A new transfer would have to wait (dockerd then shows `Waiting`)."""
        return not self._free()

    async def __aenter__(self) -> None:
        async with self._cond:
            await self._cond.wait_for(self._free)
            self._active += 1

    async def __aexit__(self, *exc: object) -> None:
        async with self._cond:
            self._active -= 1
            self._cond.notify_all()


class LayerVerificationFailed(InvalidParameter):
    """The blob's bytes do not hash to its digest. Worth another attempt only when
    this attempt resumed a partial download (moby: the partial part may be bad)."""

    def __init__(self, digest: str, resumed: bool) -> None:
        super().__init__(f"filesystem layer verification failed for digest {digest}")
        self.resumed = resumed


def retryable(e: BaseException) -> bool:
    """moby's retryOnError: broken connections, timeouts and 5xx answers are tried
    again; authentication, denial, rate limits, unknown blobs, a full disk and a
    verification failure of a fresh download are not."""
    if isinstance(e, LayerVerificationFailed):
        return e.resumed
    if isinstance(e, TransportError):
        return True
    if isinstance(e, RegistryError):
        if e.status >= 500:
            return True
        return e.status not in (401, 403, 404, 429) and e.code.upper() not in _FINAL_CODES
    if isinstance(e, OSError):
        return e.errno not in (errno.ENOSPC, errno.EDQUOT)
    return False


async def count_down(seconds: int, layer_id: str, emit: Emit, tick: float = 1.0) -> None:
    """dockerd's back-off display: `Retrying in N seconds`, once a second."""
    for left in range(seconds, 0, -1):
        emit(LayerStatus(layer_id, f"Retrying in {left} second{'s' if left != 1 else ''}"))
        await asyncio.sleep(tick)
