"""Write flow control of an asyncio.Protocol, shared by the API server's
connections (api/connection.py) and the HTTP client's (util/httpconn.py).

The protocol's pause_writing/resume_writing call pause()/resume(); a writer
calls `await wait()` after a write while `paused` (several writers may wait at once). `release()` ends a wait early
without resuming: the protocol calls it when waiting makes no sense any more
(the connection is lost; for the client, the answer came before the request
was all sent), and the writer then looks at the protocol's state to know why.
"""
from __future__ import annotations

import asyncio


class WriteFlow:
    def __init__(self) -> None:
        self.paused = False                       # the transport's buffer is full
        self._waiter: asyncio.Future[None] | None = None    # shared by all waiting writers

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.release()

    def release(self) -> None:
        """End the current wait of every writer, if any (paused or not)."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self) -> None:
        """Until writing may go on or release() is called (returns at once if not paused).
        Any number of writers may wait at once: they share one future, shielded so
        that a writer cancelled while waiting leaves the others waiting."""
        if not self.paused:
            return
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)
