"""One layer blob download as dockerd does it (moby distribution/pull_v2.go
layerDescriptor.Download under xfer/download.go's retry loop):

- up to `attempts` attempts; after failed attempt n (when `transfer.retryable`)
  a back-off of n x 5 s, shown as `Retrying in N seconds`;
- the partial file is kept between attempts and the next one asks only for the
  rest (`Range: bytes=<offset>-`); a registry that answers 200 instead of 206
  sends the whole blob again, and the file starts over;
- the digest is computed over the whole file as it grows (one running hash), so
  a resumed download is verified exactly like a fresh one; a mismatch after a
  resumed attempt throws the partial file away and tries again from zero.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from typing import IO, Callable

from ..progress import LayerStatus, Progress, ProgressEvent
from .client import RegistrySession, TransportError, describe, registry_error
from .follow import Follower
from .manifest import Descriptor
from .transfer import RETRY_STEP_SECONDS, LayerVerificationFailed, count_down, retryable
from ..util.httpclient import HTTPError

log = logging.getLogger("pydockerd.distribution")

Emit = Callable[[ProgressEvent], None]
_WRITE_BATCH = 1 << 20       # per write (and thread hop): the unpack follows the file (follow.py)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _Partial:
    """The download file and the hash of exactly the bytes written to it; a
    follower (follow.py) is told how far the file is written and when it restarts."""

    def __init__(self, f: IO[bytes], follower: Follower | None) -> None:
        self.f = f
        self.follower = follower
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray) -> None:
        self.f.write(data)
        self.hash.update(data)
        self.size += len(data)
        if self.follower is not None:
            self.f.flush()
            self.follower.grew(self.size)

    def reset(self) -> None:
        if self.follower is not None:   # first: a reader never takes the cut for an end
            self.follower.restarted()
        self.f.seek(0)
        self.f.truncate()
        self.hash = hashlib.sha256()
        self.size = 0


async def download_blob(sess: RegistrySession, repo: str, desc: Descriptor, path: str,
                        layer_id: str, emit: Emit, attempts: int,
                        follower: Follower | None = None) -> None:
    """Download desc's blob into path (verified), retrying as dockerd does; a
    follower learns of every byte written and is told `done` once verified."""
    f = await asyncio.to_thread(open, path, "wb")
    part = _Partial(f, follower)
    try:
        attempt = 1
        while True:
            try:
                await _attempt(sess, repo, desc, part, layer_id, emit)
                return
            except Exception as e:      # noqa: BLE001 - classified, else re-raised
                if attempt >= attempts or not retryable(e):
                    if attempt > 1:
                        log.info("download of %s failed after %d attempts: %s",
                                 desc.digest, attempt, e)
                    raise
                log.info("download of %s failed, retrying (%d/%d): %s", desc.digest,
                         attempt, attempts, e)
                await count_down(attempt * RETRY_STEP_SECONDS, layer_id, emit)
                attempt += 1
    finally:
        await asyncio.to_thread(f.close)


async def _attempt(sess: RegistrySession, repo: str, desc: Descriptor, part: _Partial,
                   layer_id: str, emit: Emit) -> None:
    if desc.size and part.size > desc.size:        # more than the blob: start over
        await asyncio.to_thread(part.reset)
    offset = part.size
    if not (desc.size and offset == desc.size):    # else every byte is here already
        await _fetch(sess, repo, desc, part, layer_id, emit)
    emit(LayerStatus(layer_id, "Verifying Checksum"))
    if "sha256:" + part.hash.hexdigest() != desc.digest:
        await asyncio.to_thread(part.reset)
        raise LayerVerificationFailed(desc.digest, resumed=offset != 0)
    if part.follower is not None:
        part.follower.done()
    emit(LayerStatus(layer_id, "Download complete"))


async def _fetch(sess: RegistrySession, repo: str, desc: Descriptor, part: _Partial,
                 layer_id: str, emit: Emit) -> None:
    """One GET of the blob (the rest of it when part holds a beginning)."""
    offset = part.size
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    if offset:
        log.debug("resuming download of %s from byte %d", desc.digest, offset)
        if part.follower is not None:
            part.follower.resuming()
    resp = await sess.request("GET", f"/v2/{repo}/blobs/{desc.digest}", headers=headers)
    async with resp:
        if offset and resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise TransportError(f'Get "{resp.url}": Content-Range '
                                     f'{resp.headers.get("Content-Range", "")!r} does not '
                                     f"start at the requested offset {offset}")
        elif resp.status == 200:
            if offset:                             # the registry ignored the Range
                await asyncio.to_thread(part.reset)
                offset = 0
        else:
            raise await registry_error(resp)
        expected = None if resp.content_length is None else offset + resp.content_length
        total = desc.size or expected or 0
        buf = bytearray()
        last = 0.0

        def flush() -> None:                       # (the loop waits: buf stays as is)
            part.write(buf)
        try:
            async for chunk in resp.iter_chunks(256 << 10):
                buf += chunk
                if len(buf) >= _WRITE_BATCH:
                    await asyncio.to_thread(flush)
                    buf.clear()
                now = time.monotonic()
                if now - last > 0.1:
                    last = now
                    emit(Progress(layer_id, "Downloading", part.size + len(buf), total))
        except (HTTPError, OSError) as e:
            raise TransportError(describe("GET", str(resp.url), e, body=True)) from None
        finally:
            if buf:                                # what arrived is kept for a resume
                await asyncio.to_thread(flush)
    if (desc.size and part.size != desc.size) or (expected is not None
                                                  and part.size != expected):
        raise TransportError(f'Get "{resp.url}": unexpected EOF '
                             f"({part.size} of {total} bytes)")
    emit(Progress(layer_id, "Downloading", part.size, total))
