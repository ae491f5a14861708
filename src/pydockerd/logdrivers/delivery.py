"""Delivery modes (the `mode` log option) for drivers that send elsewhere.

blocking (default): the pipeline calls the driver itself; a slow endpoint slows that
container's tailer only (its output waits in conmon's spool, up to a bound past
which conmon is stopped and the container's writes block, as with dockerd:
throttle.py), and the daemon's event loop never waits on it as long as the
pipeline calls drivers off the loop (see remote.open_remote).

non-blocking: `log` puts the message in a ring of `max-buffer-size` bytes of lines
(default 1e6, as dockerd) and returns at once; one thread per container sends from
the ring. A message that does not fit is dropped (dockerd's messageRing drops the
new message, never one already queued); the count is kept in `dropped`. On close
the thread sends what is left (for at most DRAIN_SECONDS) and closes the driver.
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Mapping

from .message import LogDriver, Message
from .netio import DriverClosed

log = logging.getLogger("pydockerd.logs")

GENERIC_OPTS = ("mode", "max-buffer-size", "cache-disabled", "cache-max-size",
                "cache-max-file", "cache-compress")
DEFAULT_RING_BYTES = 1_000_000
DRAIN_SECONDS = 10.0


def driver_options(opts: Mapping[str, str]) -> dict[str, str]:
    """The options a driver checks: dockerd strips mode/max-buffer-size and the cache
    options before the driver's own validation."""
    return {k: v for k, v in opts.items() if k not in GENERIC_OPTS}


class Ring:
    """dockerd's messageRing: bounded by line bytes (or by count when max_count >= 0);
    a message that would overflow a non-empty ring is refused."""

    def __init__(self, max_bytes: int = DEFAULT_RING_BYTES, max_count: int = -1) -> None:
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.size = 0
        self._q: collections.deque[Message] = collections.deque()
        self._cond = threading.Condition()
        self.closed = False

    def put(self, msg: Message) -> bool:
        with self._cond:
            if self.closed:
                raise DriverClosed()
            if self._q and (
                    (self.max_count >= 0 and len(self._q) >= self.max_count)
                    or (self.max_count < 0 and self.size + len(msg.line) > self.max_bytes)):
                self._cond.notify()
                return False
            self._q.append(msg)
            self.size += len(msg.line)
            self._cond.notify()
            return True

    def get(self) -> Message | None:
        """The oldest message; waits for one; None once closed and empty."""
        with self._cond:
            while not self._q and not self.closed:
                self._cond.wait()
            if not self._q:
                return None
            msg = self._q.popleft()
            self.size -= len(msg.line)
            return msg

    def clear(self) -> int:
        with self._cond:
            n = len(self._q)
            self._q.clear()
            self.size = 0
            return n

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Sender:
    """A thread that hands a ring's messages to `inner` until the ring is closed and
    empty (or `abandon()`), then closes `inner`."""

    def __init__(self, inner: LogDriver, ring: Ring, name: str) -> None:
        self.inner = inner
        self.ring = ring
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                msg = self.ring.get()
                if msg is None:
                    break
                try:
                    self.inner.log(msg)
                except DriverClosed:
                    break
                except Exception as e:          # a driver bug must not end the sender
                    log.warning("log driver: message dropped: %s", e)
        finally:
            self.inner.close()

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """No more messages; what is queued is sent for at most `drain_seconds`."""
        self.ring.close()
        if drain_seconds <= 0:
            self.abandon()
            return
        timer = threading.Timer(drain_seconds, self.abandon)
        timer.daemon = True
        timer.start()

    def abandon(self) -> None:
        """Give up at once: the queue is dropped, a send in progress is interrupted."""
        dropped = self.ring.clear()
        self.ring.close()
        if dropped:
            log.warning("log driver closed with %d messages not sent", dropped)
        self.inner.close()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


class NonBlocking:
    """mode=non-blocking around any driver (LogDriver protocol)."""

    def __init__(self, inner: LogDriver, max_bytes: int = DEFAULT_RING_BYTES,
                 name: str = "log-nonblocking") -> None:
        self.sender = Sender(inner, Ring(max_bytes if max_bytes >= 0 else DEFAULT_RING_BYTES),
                             name)
        self.dropped = 0

    def log(self, msg: Message) -> bool:
        if not self.sender.ring.put(msg):
            self.dropped += 1
        return False

    def commit(self) -> Mapping[str, int]:
        return {}

    def close(self) -> None:
        """Returns at once; the sender drains in the background."""
        self.sender.stop()

    def join(self, timeout: float | None = None) -> bool:
        return self.sender.join(timeout)
