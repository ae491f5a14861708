"""distribution/download.py with a scripted registry session: a broken attempt is
resumed with a Range request (the follower is told: an unpack failing on those
bytes waits for the digest, layerpull.py), and a resumed blob failing its digest
starts the file over from byte 0."""
from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import AsyncIterator

import pytest

from pydockerd.distribution import download
from pydockerd.distribution.follow import Follower
from pydockerd.distribution.manifest import DOCKER_LAYER_GZIP, Descriptor
from pydockerd.progress import ProgressEvent

BLOB = os.urandom(300_000)
HALF = len(BLOB) // 2


class FakeResponse:
    def __init__(self, status: int, body: bytes, offset: int, broken: bool) -> None:
        self.status, self.body, self.broken = status, body, broken
        self.url = "http://reg.test/v2/x/blobs/b"
        self.content_length: int | None = len(body) if not broken else len(BLOB) - offset
        self.headers = {"Content-Range": f"bytes {offset}-{len(BLOB) - 1}/{len(BLOB)}"} \
            if status == 206 else {}

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def iter_chunks(self, n: int) -> AsyncIterator[bytes]:
        for i in range(0, len(self.body), 8192):
            yield self.body[i:i + 8192]
        if self.broken:
            raise OSError("connection reset by peer")


class ScriptedSession:
    """Answers blob GETs in turn: the first half then a reset; the rest spoilt
    (one byte flipped) as a 206; then the whole blob."""

    def __init__(self) -> None:
        self.ranges: list[str] = []

    async def request(self, method: str, path: str, headers: dict[str, str]
                      ) -> FakeResponse:
        self.ranges.append(headers.get("Range", ""))
        n = len(self.ranges)
        if n == 1:
            return FakeResponse(200, BLOB[:HALF], 0, broken=True)
        if n == 2:
            rest = bytearray(BLOB[HALF:])
            rest[10] ^= 0xFF
            return FakeResponse(206, bytes(rest), HALF, broken=False)
        return FakeResponse(200, BLOB, 0, broken=False)


@pytest.mark.timeout(30)
def test_a_resumed_download_tells_its_follower_and_a_mismatch_starts_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "RETRY_STEP_SECONDS", 0)
    sess = ScriptedSession()
    desc = Descriptor(DOCKER_LAYER_GZIP, "sha256:" + hashlib.sha256(BLOB).hexdigest(),
                      len(BLOB))
    follower = Follower()
    seen: list[ProgressEvent] = []
    path = tmp_path / "blob"
    asyncio.run(download.download_blob(sess, "x", desc, str(path), "b",  # type: ignore[arg-type]
                                       seen.append, 3, follower))
    assert sess.ranges == ["", f"bytes={HALF}-", ""]
    assert follower.resumed and follower.was_restarted
    assert path.read_bytes() == BLOB
