"""One layer of a pull (pull.py): its blob downloaded (download.py) and unpacked
as it arrives (follow.py), in a thread of its own.

- Only one making of a layer runs at a time (flights.py), in a task of the
  flight's, joined by every pull that needs the layer: each shows its progress
  and uses what it made (or makes it if it fails); it goes on while any of
  them waits, and is cancelled when the last one leaves.
- The download holds a `downloads` slot (max-concurrent-downloads), the unpack
  thread an `unpacks` slot (as many, daemon-wide), asked for once its download
  has its slot. A download never waits for an unpack, so the two limits cannot
  deadlock; a layer whose unpack waits for a slot keeps downloading, and the
  unpack catches up from the file once it gets one.
- An unpack that fails (a bad tar, an unsafe path, a full disk) cancels its
  download at once and the layer fails with the unpack's error; a failed or
  cancelled download stops the unpack (`Abandoned`) and its own error wins.
  Once the download has resumed (a Range request after a broken attempt), an
  unpack failure waits for the digest instead: a mismatch (bytes spoilt in
  transit) is retried as dockerd retries it, and the finished file unpacked.
- The unpack thread is always waited out, through any number of cancellations
  (util/tasks.wait_out): when the layer's task ends, the thread is over, its
  temporary directory gone, and a layer it registered is in the pull's claim.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import IO, Any, Callable

from ..images.layers import LayerStore
from ..progress import LayerStatus, Progress, ProgressEvent
from .client import RegistrySession
from .download import download_blob
from .flights import Claim, LayerFlights
from ..util.tasks import wait_out
from .follow import Abandoned, Follower, FollowingReader, Restarted, in_own_thread
from .manifest import OCI_LAYER_ZSTD, Descriptor
from .streams import ZSTD_MAGIC, ProgressReader, zstd_reader
from .transfer import Limiter

log = logging.getLogger("pydockerd.distribution")
Emit = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class PullSlots:
    """What all pulls of the daemon share."""
    downloads: Limiter          # max-concurrent-downloads
    unpacks: Limiter            # unpack threads (as many)
    flights: LayerFlights


@dataclass(frozen=True)
class LayerJob:
    layers: LayerStore
    session: RegistrySession
    repo: str
    desc: Descriptor
    diff_id: str
    parent: str                 # chain id of the layer below ("" for the first)
    chain: str
    path: str                   # where the blob downloads to (removed after the making)
    keep: Callable[[str, str], None]    # keep(path, digest): the verified blob kept
    attempts: int               # max-download-attempts
    claim: Claim                # the pull's: a layer made here goes in claim.created
    emit: Emit

    @property
    def sid(self) -> str:
        return self.desc.digest.split(":", 1)[-1][:12]


async def pull_layer(job: LayerJob, slots: PullSlots) -> None:
    """Make job's layer unless another pull does: then show that one's progress
    and use what it made (or make it if that making fails). The making goes on
    for the other pulls waiting for it when this one's client goes away."""
    while True:
        # the making owns its hold on the session: the pull that starts it may end
        # (and close the session) while other pulls still wait for the layer
        release = job.session.hold()
        flight, mine = slots.flights.make(
            job.chain, lambda f: _make(replace(job, emit=f.emit, claim=f.made), slots))
        if mine:
            assert flight.task is not None
            flight.task.add_done_callback(_releasing(release))
        else:
            release()
        err = await flight.join(job.emit, job.claim)
        if err is None:
            return
        if mine and not isinstance(err, asyncio.CancelledError):
            raise err
        if await asyncio.to_thread(job.layers.exists, job.chain):
            return


def _releasing(release: Callable[[], None]) -> Callable[[object], None]:
    """A done callback that lets go of a hold (bound now: not the loop's next one)."""
    return lambda _: release()


async def _make(job: LayerJob, slots: PullSlots) -> None:
    """The flight's task: the download file is its own (the pull that started it may
    be gone): the blob is kept once the layer is made (the blob cache drops it if
    the layer goes), else removed."""
    try:
        if not await asyncio.to_thread(job.layers.exists, job.chain):
            await _download_and_unpack(job, slots)
            # waited out: a cancel here must not remove the file while it is moved
            await wait_out(asyncio.to_thread(job.keep, job.path, job.desc.digest))
    finally:
        await wait_out(asyncio.to_thread(_remove, job.path))


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def _download_and_unpack(job: LayerJob, slots: PullSlots) -> None:
    follower = Follower()
    downloaded = threading.Event()          # from then on: "Extracting" progress
    dl: asyncio.Task[None] | None = None
    up: asyncio.Task[None] | None = None
    try:
        if slots.downloads.busy():
            job.emit(LayerStatus(job.sid, "Waiting"))
        async with slots.downloads:
            dl = asyncio.create_task(download_blob(
                job.session, job.repo, job.desc, job.path, job.sid, job.emit, job.attempts,
                follower))
            up = asyncio.create_task(_unpack(job, slots.unpacks, follower, dl, downloaded))
            while not dl.done():
                await asyncio.wait([dl] if up.done() else [dl, up],
                                   return_when=asyncio.FIRST_COMPLETED)
                if up.done() and not dl.done() and not up.cancelled() and up.exception():
                    up.result()             # the unpack failed: its error, the download stops
            dl.result()
        downloaded.set()
        await up
    except BaseException:
        try:
            await wait_out(_stop(follower, dl, up))
        except asyncio.CancelledError:      # cancelled again: the first reason stands
            pass
        raise


async def _stop(follower: Follower, *tasks: asyncio.Task[None] | None) -> None:
    follower.abandon()
    running = [t for t in tasks if t is not None]
    for t in running:
        t.cancel()
    if running:
        await asyncio.wait(running)
    for t in running:
        if not t.cancelled():
            t.exception()                   # retrieved: the caller raises its own


async def _unpack(job: LayerJob, unpacks: Limiter, follower: Follower,
                  dl: asyncio.Task[None], downloaded: threading.Event) -> None:
    async with unpacks:
        try:
            await wait_out(_thread(job, lambda: follower.open(job.path), downloaded),
                           follower.abandon)
            return
        except Restarted:                   # the blob started over: unpack the file
            log.info("download of %s started over: unpacking it from the file",
                     job.desc.digest)
            await _verdict(dl)
        except Abandoned:
            raise
        except Exception as e:
            if not follower.resumed:
                raise
            # bytes of a resumed request may have been spoilt in transit: the digest
            # decides (as dockerd, which unpacks only a verified blob); a mismatch
            # makes the download start over (retried), then the file is unpacked
            log.info("unpack of %s failed on a resumed download (%s): waiting for its "
                     "digest", job.desc.digest, e)
            await _verdict(dl)
            if not follower.was_restarted:
                raise                       # the verified blob itself is bad
            log.info("download of %s started over: unpacking it from the file",
                     job.desc.digest)
        again = Follower.finished(os.path.getsize(job.path))
        await wait_out(_thread(job, lambda: again.open(job.path), downloaded),
                       again.abandon)


async def _verdict(dl: asyncio.Task[None]) -> None:
    """Returns once the download is over and verified; Abandoned if it failed."""
    await asyncio.wait([dl])
    if dl.cancelled() or dl.exception() is not None:
        raise Abandoned("the layer download failed") from None


def _thread(job: LayerJob, opener: Callable[[], FollowingReader | IO[bytes]],
            downloaded: threading.Event) -> asyncio.Future[None]:
    loop = asyncio.get_running_loop()

    def report(n: int) -> None:
        if downloaded.is_set():
            loop.call_soon_threadsafe(job.emit,
                                      Progress(job.sid, "Extracting", n, job.desc.size))

    def work() -> None:
        with opener() as raw:
            src: Any = ProgressReader(raw, report)
            if job.desc.media_type == OCI_LAYER_ZSTD or src.read(4) == ZSTD_MAGIC:
                src.seek(0)
                src = zstd_reader(src)
            else:
                src.seek(0)
            _, created = job.layers.unpack(src, job.diff_id, job.parent)
            if created:
                job.claim.created.append(job.chain)
    return in_own_thread(work, f"pull-{job.sid}")
