"""Byte streams produced by a worker thread and consumed on the event loop.

`from_thread(produce)` runs produce(out) in its own thread; out.write(bytes)
batches into ~1 MiB chunks handed to the loop through a bounded queue (so a
slow client slows the producer down instead of filling memory). When the
consumer stops early (client gone), the producer's next write raises
BrokenPipeError and the thread ends.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import AsyncIterator, Callable

_BATCH = 1 << 20
_END = object()


class ThreadPipe:
    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = 8) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize)
        self.closed = threading.Event()
        self._buf = bytearray()

    def write(self, b: bytes | bytearray | memoryview) -> int:
        self._buf += b
        if len(self._buf) >= _BATCH:
            self.flush()
        return len(b)

    def flush(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            self.put(data)

    def put(self, item: object) -> None:
        if self.closed.is_set():
            raise BrokenPipeError("stream consumer went away")
        fut = asyncio.run_coroutine_threadsafe(self.queue.put(item), self._loop)
        while True:
            try:
                fut.result(timeout=0.5)
                return
            except concurrent.futures.TimeoutError:
                if self.closed.is_set():
                    fut.cancel()
                    raise BrokenPipeError("stream consumer went away") from None


async def from_thread(produce: Callable[[ThreadPipe], None],
                      spawn: Callable[[Callable[[], None]], None] | None = None
                      ) -> AsyncIterator[bytes]:
    """produce(out) in a new thread, or through `spawn(work)` (a thread of the caller's)."""
    pipe = ThreadPipe(asyncio.get_running_loop())

    def work() -> None:
        try:
            produce(pipe)
            pipe.flush()
            pipe.put(_END)
        except BrokenPipeError:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            try:
                pipe.put(e)
            except BrokenPipeError:
                pass

    if spawn is None:
        threading.Thread(target=work, name="image-stream", daemon=True).start()
    else:
        spawn(work)
    try:
        while True:
            item = await pipe.queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        pipe.closed.set()
        while not pipe.queue.empty():
            pipe.queue.get_nowait()
