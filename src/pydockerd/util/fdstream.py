"""Output of processes' pipes (or a pty master) read on the event loop.

`read_fds` is the one fd pump: exec sessions stream it to the client and
health checks collect it. A pty whose other side is gone answers EIO, which
counts as the end of that stream.
"""
from __future__ import annotations

import asyncio
import os
from typing import AsyncGenerator, Sequence

CHUNK = 65536


async def read_fds(fds: Sequence[tuple[str, int]]) -> AsyncGenerator[tuple[str, bytes], None]:
    """(name, data) from each fd as it comes, until every fd reached its end."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
    watched: set[int] = set()

    def readable(fd: int, name: str) -> None:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:          # EIO: the pty's other side is gone
            data = b""
        if data:
            queue.put_nowait((name, data))
            return
        loop.remove_reader(fd)
        watched.discard(fd)
        queue.put_nowait(None)

    for name, fd in fds:
        os.set_blocking(fd, False)
        loop.add_reader(fd, readable, fd, name)
        watched.add(fd)
    live = len(watched)
    try:
        while live:
            item = await queue.get()
            if item is None:
                live -= 1
                continue
            yield item
    finally:
        for fd in watched:
            loop.remove_reader(fd)
