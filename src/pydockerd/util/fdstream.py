"""Output of processes' pipes (or a pty master) read on the event loop.

`read_fds` is the one fd pump: exec sessions stream it to the client and
health checks collect it. A pty whose other side is gone answers EIO, which
counts as the end of that stream. `read_pipe` collects one short message from a
helper's pipe (conmon's sync pipe, an exec's pid and error pipes).
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


async def read_pipe(fd: int, until: bytes | None = None) -> bytes:
    """What is written to a pipe until its last writer closes it or, with `until`,
    until a chunk holding `until` came, read as the pipe becomes readable."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        while not done.done():
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            except OSError as e:
                done.set_exception(e)
                return
            if data:
                chunks.append(data)
            if not data or (until is not None and until in data):
                done.set_result(None)
    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    return b"".join(chunks)
