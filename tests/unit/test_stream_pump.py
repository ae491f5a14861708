"""The one fd pump (util/fdstream.read_fds) and the hijacked-connection pump."""
from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator

from pydockerd.api.streams import frame, pump_hijacked
from pydockerd.util.fdstream import read_fds


def test_read_fds_reads_every_fd_to_its_end() -> None:
    async def main() -> list[tuple[str, bytes]]:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        os.write(w1, b"out")
        os.write(w2, b"err")
        os.close(w1)
        os.close(w2)
        try:
            return [x async for x in read_fds([("stdout", r1), ("stderr", r2)])]
        finally:
            os.close(r1)
            os.close(r2)
    got = asyncio.run(main())
    assert sorted(got) == [("stderr", b"err"), ("stdout", b"out")]


class Writer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> None:
        self.data += b

    async def drain(self) -> None:
        pass


class Reader:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def read(self, n: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        await asyncio.sleep(3600)
        return b""


async def _output(items: list[tuple[str, bytes]], hold: bool = False
                  ) -> AsyncIterator[tuple[str, bytes]]:
    for item in items:
        yield item
    if hold:
        await asyncio.sleep(3600)


def test_pump_frames_the_wanted_streams_and_forwards_stdin() -> None:
    sent: list[bytes] = []
    closed: list[bool] = []

    async def send(b: bytes) -> None:
        sent.append(b)

    async def main() -> tuple[bool, bytes]:
        w = Writer()
        detached = await pump_hijacked(
            Reader([b"in", b""]), w, _output([("stdout", b"a"), ("stderr", b"b")]),  # type: ignore[arg-type]
            tty=False, want={"stdout"}, stdin=(send, lambda: closed.append(True)))
        return detached, bytes(w.data)
    detached, data = asyncio.run(main())
    assert not detached and data == frame("stdout", b"a")


def test_pump_ends_when_the_client_detaches() -> None:
    async def send(b: bytes) -> None:
        pass

    async def main() -> bool:
        return await pump_hijacked(
            Reader([b"x\x10\x11"]), Writer(), _output([("stdout", b"a")], hold=True),  # type: ignore[arg-type]
            tty=True, want={"stdout"}, stdin=(send, lambda: None), detach_keys=b"\x10\x11")
    assert asyncio.run(asyncio.wait_for(main(), 5)) is True
