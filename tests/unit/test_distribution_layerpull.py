"""distribution/layerpull.py and flights.py through pull.Pull: layers downloaded by a
fake registry (download_blob replaced: it writes the blob in small pieces, can stall
a blob after some bytes, and records starts and cancels) and unpacked into a real
layer store on a temporary data root."""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import ssl
import tarfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pydockerd.distribution import layerpull
from pydockerd.distribution.auth import AuthConfig
from pydockerd.distribution.blobcache import BlobCache
from pydockerd.distribution.client import RegistrySession
from pydockerd.distribution.endpoints import Endpoint
from pydockerd.distribution.flights import LayerFlights
from pydockerd.distribution.follow import Follower
from pydockerd.distribution.layerpull import PullSlots
from pydockerd.distribution.manifest import DOCKER_LAYER_GZIP, Descriptor, ImageManifest
from pydockerd.distribution.pull import Pull, Resolved
from pydockerd.distribution.transfer import Limiter
from pydockerd.events import EventBus
from pydockerd.images import ImageService
from pydockerd.images.layers import chain_ids
from pydockerd.images.references import parse_normalized
from pydockerd.progress import ErrorEvent, LayerStatus, Progress, ProgressEvent
from pydockerd.store import Store

DEADLINE = 20.0


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Layer:
    def __init__(self, name: str, entry: str | None = None, size: int = 64 << 10,
                 blob: bytes | None = None) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = os.urandom(size)
            info = tarfile.TarInfo(entry or f"{name}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        self.diff_id = sha(buf.getvalue())
        self.blob = blob if blob is not None else gzip.compress(buf.getvalue(), 1)
        self.desc = Descriptor(DOCKER_LAYER_GZIP, sha(self.blob), len(self.blob))


CORRUPT = b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"not deflate data at all" * 50000


class FakeRegistry:
    """download_blob's stand-in: writes blobs 4 KiB at a time, a stalled blob stops
    after `stall_at` bytes until `release` (forever if never released)."""

    def __init__(self) -> None:
        self.stall_at: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.starts: list[str] = []
        self.cancelled: list[str] = []
        self.fail_once: dict[str, Exception] = {}     # raised where the blob stalls
        # (offset, bytes, event): the blob's first `offset` bytes, then a resumed
        # request whose bytes are spoilt; once the unpack gave up (event set), the
        # digest mismatches and the file starts over (download.py's contract)
        self.spoil_resume: dict[str, tuple[int, bytes, threading.Event]] = {}

    async def _spoilt_resume(self, data: bytes, spoilt: tuple[int, bytes, threading.Event],
                             path: str, follower: Follower) -> None:
        offset, rest, unpack_failed = spoilt
        with open(path, "wb") as f:
            f.write(data[:offset])
            f.flush()
            follower.grew(offset)
            follower.resuming()
            f.write(rest)
            f.flush()
            follower.grew(offset + len(rest))
        await until(unpack_failed.is_set)
        follower.restarted()               # the digest did not match: from byte 0

    def stall(self, layer: Layer, at: int = 8192) -> None:
        self.stall_at[layer.desc.digest] = at
        self.gates[layer.desc.digest] = asyncio.Event()

    def release(self, layer: Layer) -> None:
        self.gates[layer.desc.digest].set()

    async def download_blob(self, sess: object, repo: str, desc: Descriptor, path: str,
                            sid: str, emit: Callable[[ProgressEvent], None], attempts: int,
                            follower: Follower) -> None:
        data = LAYERS[desc.digest].blob
        self.starts.append(desc.digest)
        assert isinstance(sess, RegistrySession)
        try:
            if (spoilt := self.spoil_resume.pop(desc.digest, None)) is not None:
                await self._spoilt_resume(data, spoilt, path, follower)
            with open(path, "wb") as f:
                for off in range(0, len(data), 4096):
                    if off >= self.stall_at.get(desc.digest, len(data)):
                        await self.gates[desc.digest].wait()
                        if (err := self.fail_once.pop(desc.digest, None)) is not None:
                            raise err
                    assert not sess.closed, "the making uses a closed session"
                    f.write(data[off:off + 4096])
                    f.flush()
                    follower.grew(min(off + 4096, len(data)))
                    emit(Progress(sid, "Downloading", min(off + 4096, len(data)), len(data)))
                    await asyncio.sleep(0)
            follower.done()
            emit(LayerStatus(sid, "Download complete"))
        except asyncio.CancelledError:
            self.cancelled.append(desc.digest)
            raise


LAYERS: dict[str, Layer] = {}
CACHES: dict[str, BlobCache] = {}


SESSIONS: list[RegistrySession] = []


def session() -> RegistrySession:
    """A real session (its closing is the real one) to a registry never contacted."""
    s = RegistrySession(Endpoint("https://127.0.0.1:5000", "127.0.0.1:5000",
                                 ssl.create_default_context()), AuthConfig(), [])
    SESSIONS.append(s)
    return s


class FakeContainers:
    def using_image(self, image_id: str) -> list[str]:
        return []

    def is_running(self, container_id: str) -> bool:
        return False


@pytest.fixture
def svc(tmp_path: Path) -> ImageService:
    s = ImageService(str(tmp_path / "root"), Store(str(tmp_path / "db.sqlite")), EventBus(),
                     containers=FakeContainers())
    os.makedirs(s.data_root)
    asyncio.run(s.start())
    return s


@pytest.fixture
def reg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    r = FakeRegistry()
    monkeypatch.setattr(layerpull, "download_blob", r.download_blob)
    LAYERS.clear()
    SESSIONS.clear()
    yield r
    assert all(s.closed for s in SESSIONS)        # none left open (its connections)


def slots(limit: int = 3) -> PullSlots:
    return PullSlots(Limiter(lambda: limit), Limiter(lambda: limit), LayerFlights())


def make_pull(svc: ImageService, s: PullSlots, name: str, layers: list[Layer]) -> Pull:
    for la in layers:
        LAYERS[la.desc.digest] = la
    diff_ids = [la.diff_id for la in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}, "comment": name}
    cb = json.dumps(config).encode()
    manifest = ImageManifest("application/vnd.docker.distribution.manifest.v2+json",
                             Descriptor("application/vnd.docker.container.image.v1+json",
                                        sha(cb), len(cb)), [la.desc for la in layers])
    res = Resolved(session(), name, sha(name.encode()), manifest, cb, config, diff_ids)
    cache = CACHES.setdefault(svc.data_root, BlobCache(svc.data_root))  # one, as the daemon's
    cache.setup()
    return Pull(svc, cache, EventBus(), parse_normalized(f"127.0.0.1:5000/{name}:latest"),
                res, s, 1)


async def collect(p: Pull, out: list[ProgressEvent] | None = None) -> list[ProgressEvent]:
    evs = out if out is not None else []
    async for ev in p.run():
        evs.append(ev)
    return evs


async def until(cond: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def cancelled_again_and_again(p: Pull, reached: Callable[[], bool],
                                    go_on: threading.Event, times: int) -> bool:
    """Pull `p` until `reached`, then cancel it `times` times, 10 ms apart, while
    the pull cleans up (a client gone); then let the blocked thread go on. True if
    the pull ended before that (it should have waited)."""
    consumer = asyncio.create_task(collect(p))
    await until(reached)
    for _ in range(times):
        consumer.cancel()
        await asyncio.sleep(0.01)
    ended_early = consumer.done()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    return ended_early


def errors(evs: list[ProgressEvent]) -> list[str]:
    return [e.message for e in evs if isinstance(e, ErrorEvent)]


def statuses(evs: list[ProgressEvent], layer: Layer) -> list[str]:
    sid = layer.desc.digest.split(":")[1][:12]
    return [e.text for e in evs if isinstance(e, LayerStatus) and e.id == sid]


def downloading(evs: list[ProgressEvent], layer: Layer) -> bool:
    sid = layer.desc.digest.split(":")[1][:12]
    return any(isinstance(e, Progress) and e.id == sid for e in evs)


def leftovers(svc: ImageService) -> list[str]:
    """Layer dirs (registered or half-made) and downloads in progress."""
    layers = [n for n in os.listdir(svc.layers.root) if n != "l"]
    tmp = os.listdir(os.path.join(svc.data_root, "distribution", "tmp"))
    return layers + tmp + [c for c in svc.layers.all()]


def pull_threads() -> list[threading.Thread]:
    """Unpack threads still running (one settling its result has a moment to end)."""
    for t in threading.enumerate():
        if t.name.startswith("pull-"):
            t.join(5)
    return [t for t in threading.enumerate() if t.name.startswith("pull-")]


# --- 1. a failed unpack stops the download and fails the pull at once -----------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", ["corrupt gzip", "unsafe path"])
def test_a_failed_unpack_cancels_its_download_and_fails_the_pull(svc, reg, bad) -> None:
    slow = Layer("slow")
    broken = Layer("bad", blob=CORRUPT) if bad == "corrupt gzip" else \
        Layer("bad", entry="../../escape", size=1 << 20)

    async def main() -> list[ProgressEvent]:
        reg.stall(slow)                    # never released: only a failure ends the pull
        reg.stall(broken, at=256 << 10)     # the rest never comes
        p = make_pull(svc, slots(), "img", [slow, broken])
        return await asyncio.wait_for(collect(p), DEADLINE)
    evs = asyncio.run(main())
    expected = "invalid layer tar" if bad == "corrupt gzip" else "path escapes the layer root"
    assert len(errors(evs)) == 1 and expected in errors(evs)[0], evs
    assert sorted(reg.cancelled) == sorted([slow.desc.digest, broken.desc.digest])
    assert leftovers(svc) == [] and pull_threads() == []


# --- 2. unpack threads are bounded ------------------------------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize("limit", [1, 2])
def test_unpack_threads_are_bounded_by_the_download_limit(svc, reg, monkeypatch, limit
                                                          ) -> None:
    layers = [Layer(f"l{i}", size=256 << 10) for i in range(6)]
    real = svc.layers.unpack
    lock = threading.Lock()
    now = [0, 0]                           # running, most at once

    def slow_unpack(*a: Any) -> Any:
        with lock:
            now[0] += 1
            now[1] = max(now)
        try:
            threading.Event().wait(0.1)    # a slow disk: unpacks lag behind downloads
            return real(*a)
        finally:
            with lock:
                now[0] -= 1
    monkeypatch.setattr(svc.layers, "unpack", slow_unpack)

    async def main() -> list[ProgressEvent]:
        return await asyncio.wait_for(collect(make_pull(svc, slots(limit), "img", layers)),
                                      DEADLINE)
    evs = asyncio.run(main())
    assert errors(evs) == []
    assert all(svc.layers.exists(c) for c in chain_ids([la.diff_id for la in layers]))
    assert now[1] <= limit, now


# --- 3. two pulls needing the same layer --------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_layer_two_pulls_need_is_made_once(svc, reg) -> None:
    shared, a, b = Layer("shared"), Layer("a"), Layer("b")

    async def main() -> tuple[list[ProgressEvent], ...]:
        reg.stall(shared)
        reg.stall(a)
        s = slots()
        first = asyncio.create_task(collect(make_pull(svc, s, "one", [shared, a])))
        await until(lambda: a.desc.digest in reg.starts and shared.desc.digest in reg.starts)
        second = asyncio.create_task(collect(make_pull(svc, s, "two", [shared, b])))
        out: list[ProgressEvent] = []
        third = asyncio.create_task(collect(make_pull(svc, s, "one", [shared, a]), out))
        await until(lambda: b.desc.digest in reg.starts and downloading(out, a))
        reg.release(shared)
        reg.release(a)
        return tuple(await asyncio.wait_for(asyncio.gather(first, second, third), DEADLINE))
    one, two, again = asyncio.run(main())
    assert errors(one) == errors(two) == errors(again) == []
    assert reg.starts.count(shared.desc.digest) == 1 and reg.starts.count(a.desc.digest) == 1
    # the pulls that waited showed the maker's progress, as dockerd's watchers do
    assert statuses(two, shared)[-2:] == ["Download complete", "Pull complete"]
    assert downloading(two, shared) and downloading(again, a) and downloading(again, shared)
    assert statuses(again, a)[-2:] == ["Download complete", "Pull complete"]
    assert svc.resolve("127.0.0.1:5000/one").id and svc.resolve("127.0.0.1:5000/two").id


@pytest.mark.timeout(60)
def test_a_failed_pull_leaves_a_shared_layer_to_the_pull_that_holds_it(svc, reg) -> None:
    shared, b = Layer("shared"), Layer("b")
    broken = Layer("bad", blob=CORRUPT)

    async def main() -> tuple[list[ProgressEvent], ...]:
        reg.stall(broken, at=0)
        reg.stall(b, at=0)
        s = slots()
        first = asyncio.create_task(collect(make_pull(svc, s, "one", [shared, broken])))
        second = asyncio.create_task(collect(make_pull(svc, s, "two", [shared, b])))
        await until(lambda: b.desc.digest in reg.starts and svc.layers.exists(shared.diff_id))
        reg.release(broken)                # the first pull fails now, after `shared`
        one = await asyncio.wait_for(first, DEADLINE)
        reg.release(b)
        return one, await asyncio.wait_for(second, DEADLINE)
    one, two = asyncio.run(main())
    assert errors(one) and "invalid layer tar" in errors(one)[0]
    assert errors(two) == []
    img = svc.resolve("127.0.0.1:5000/two")
    assert all(svc.layers.exists(c) for c in img.layers)
    svc.remove("127.0.0.1:5000/two")
    assert leftovers(svc) == []


@pytest.mark.timeout(60)
def test_the_making_goes_on_for_a_waiting_pull_when_the_starter_leaves(svc, reg) -> None:
    """As dockerd's transfer with watchers: the client of the pull that started a
    layer goes away; the download goes on for the pull still waiting for it."""
    shared = Layer("shared")

    async def main() -> tuple[list[ProgressEvent], ...]:
        reg.stall(shared)
        s = slots()
        first = asyncio.create_task(collect(make_pull(svc, s, "one", [shared])))
        await until(lambda: shared.desc.digest in reg.starts)
        out: list[ProgressEvent] = []
        second = asyncio.create_task(collect(make_pull(svc, s, "two", [shared]), out))
        await until(lambda: downloading(out, shared))   # watching the first pull's
        first.cancel()                     # its client went away
        with pytest.raises(asyncio.CancelledError):
            await first
        reg.release(shared)
        return (await asyncio.wait_for(second, DEADLINE),)
    (two,) = asyncio.run(main())
    assert errors(two) == [] and reg.starts.count(shared.desc.digest) == 1
    assert reg.cancelled == [] and svc.layers.exists(shared.diff_id)
    assert statuses(two, shared)[-2:] == ["Download complete", "Pull complete"]
    assert CACHES[svc.data_root].has_blob(shared.desc.digest)     # kept for a push
    svc.remove("127.0.0.1:5000/two")
    assert leftovers(svc) == [] and pull_threads() == []


@pytest.mark.timeout(60)
def test_the_making_stops_when_every_pull_waiting_for_it_left(svc, reg) -> None:
    shared = Layer("shared")

    async def main() -> None:
        reg.stall(shared)
        s = slots()
        first = asyncio.create_task(collect(make_pull(svc, s, "one", [shared])))
        await until(lambda: shared.desc.digest in reg.starts)
        out: list[ProgressEvent] = []
        second = asyncio.create_task(collect(make_pull(svc, s, "two", [shared]), out))
        await until(lambda: downloading(out, shared))
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert reg.cancelled == []         # the second still waits for it
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert reg.cancelled == [shared.desc.digest]
        assert s.flights._making == {} and s.flights._holders == {}
    asyncio.run(main())
    assert reg.starts == [shared.desc.digest]
    assert leftovers(svc) == [] and pull_threads() == []


@pytest.mark.timeout(60)
def test_a_pull_waiting_for_a_failed_maker_makes_the_layer_itself(svc, reg) -> None:
    shared = Layer("shared")

    async def main() -> tuple[list[ProgressEvent], ...]:
        reg.stall(shared)
        reg.fail_once[shared.desc.digest] = OSError("connection reset by peer")
        s = slots()
        first = asyncio.create_task(collect(make_pull(svc, s, "one", [shared])))
        await until(lambda: shared.desc.digest in reg.starts)
        out: list[ProgressEvent] = []
        second = asyncio.create_task(collect(make_pull(svc, s, "two", [shared]), out))
        await until(lambda: downloading(out, shared))   # watching the first pull's
        reg.release(shared)                # the first pull's download fails
        return tuple(await asyncio.wait_for(asyncio.gather(first, second), DEADLINE))
    one, two = asyncio.run(main())
    assert errors(one) and "connection reset by peer" in errors(one)[0]
    assert errors(two) == [] and reg.starts.count(shared.desc.digest) == 2
    assert svc.layers.exists(shared.diff_id)


@pytest.mark.timeout(60)
def test_a_pull_cancelled_waiting_for_a_drop_drops_the_layers_handed_to_it(svc, reg
                                                                          ) -> None:
    """A pull waits for the drop of one of its layers (a failed pull's); another pull
    that made its other layer fails meanwhile and hands that layer over to it; then
    its client goes: the layer handed over is dropped, not left on disk."""
    shared, mine = Layer("shared"), Layer("mine")
    broken = Layer("bad", blob=CORRUPT)

    async def main() -> list[ProgressEvent]:
        reg.stall(broken, at=0)
        s = slots()
        being_dropped = chain_ids([shared.diff_id, mine.diff_id])[1]
        drop = asyncio.get_running_loop().create_future()
        s.flights._dropping[being_dropped] = drop     # a failed pull's drop under way
        first = asyncio.create_task(collect(make_pull(svc, s, "one", [shared, broken])))
        await until(lambda: svc.layers.exists(shared.diff_id))
        waiting = asyncio.create_task(collect(make_pull(svc, s, "two", [shared, mine])))
        await until(lambda: len(s.flights._holders.get(shared.diff_id, [])) == 2)
        reg.release(broken)                # the first pull fails: `shared` handed over
        one = await asyncio.wait_for(first, DEADLINE)
        waiting.cancel()                   # the waiting pull's client goes
        with pytest.raises(asyncio.CancelledError):
            await waiting
        s.flights.dropped([being_dropped])
        assert s.flights._holders == {} and s.flights._dropping == {}
        return one
    one = asyncio.run(main())
    assert errors(one) and "invalid layer tar" in errors(one)[0]
    assert pull_threads() == []
    assert leftovers(svc) == []


# --- 4. cancelled twice while the unpack finishes ------------------------------------------------
@pytest.mark.timeout(60)
def test_a_second_cancel_still_waits_for_the_unpack_and_undoes_it(svc, reg, monkeypatch
                                                                  ) -> None:
    layer = Layer("one")
    real = svc.layers.unpack
    registered, go_on = threading.Event(), threading.Event()

    def unpack_then_hang(*a: Any) -> Any:
        out = real(*a)                     # registered: the pull must drop it again
        registered.set()
        go_on.wait(DEADLINE)
        return out
    monkeypatch.setattr(svc.layers, "unpack", unpack_then_hang)

    ended_before_unpack = asyncio.run(cancelled_again_and_again(
        make_pull(svc, slots(), "img", [layer]), registered.is_set, go_on, 30))
    assert not ended_before_unpack         # the pull waited for its unpack thread
    assert pull_threads() == []
    assert leftovers(svc) == []


# --- 5. a resumed download spoilt in transit ----------------------------------------------------
def three_file_tar(second: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("a.bin", bytes(range(256)) * 1024), (second, b"b" * 65536),
                           ("c.bin", b"c" * (512 << 10))):    # (the spoilt header is read
            # before the unpack waits for bytes past the end)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.timeout(60)
def test_an_unpack_failing_on_resumed_bytes_waits_for_the_digest_and_retries(
        svc, reg, monkeypatch) -> None:
    """dockerd unpacks only a verified blob: bytes of a resumed request spoilt in
    transit fail its digest, which is retried. Here the unpack reads them first
    (an entry escaping the root where the blob has b.bin): the pull must not fail
    with the unpack's error, but wait for the digest, then unpack the new file."""
    good, bad = three_file_tar("b.bin"), three_file_tar("../escape")
    offset = 512 + 256 * 1024              # b.bin's header: where the two differ
    assert good[:offset] == bad[:offset] and good[offset:] != bad[offset:]
    layer = Layer("resumed", blob=good)
    layer.diff_id = sha(good)
    real, failed = svc.layers.unpack, threading.Event()

    def unpack(*a: Any) -> Any:
        try:
            return real(*a)
        except Exception:
            failed.set()
            raise
    monkeypatch.setattr(svc.layers, "unpack", unpack)

    async def main() -> list[ProgressEvent]:
        reg.spoil_resume[layer.desc.digest] = (offset, bad[offset:], failed)
        return await asyncio.wait_for(collect(make_pull(svc, slots(), "img", [layer])),
                                      DEADLINE)
    evs = asyncio.run(main())
    assert errors(evs) == [] and reg.cancelled == [] and failed.is_set()
    assert svc.layers.exists(layer.diff_id)
    assert (Path(svc.layers.diff_dir(layer.diff_id)) / "b.bin").read_bytes() == b"b" * 65536


# --- 6. cancelled while the verified blob is kept ------------------------------------------------
@pytest.mark.timeout(60)
def test_a_cancel_while_the_blob_is_kept_waits_for_the_keeping(svc, reg, monkeypatch
                                                              ) -> None:
    """The making's last step moves the verified blob into the blob cache (a thread);
    a cancel then must wait for it, not remove the download file under it."""
    layer = Layer("one")
    cache = CACHES.setdefault(svc.data_root, BlobCache(svc.data_root))
    real = cache.keep_blob
    keeping, go_on = threading.Event(), threading.Event()
    kept: list[BaseException | None] = []

    def slow_keep(path: str, digest: str) -> None:
        keeping.set()
        go_on.wait(DEADLINE)
        try:
            real(path, digest)
            kept.append(None)
        except BaseException as e:
            kept.append(e)
            raise
    monkeypatch.setattr(cache, "keep_blob", slow_keep)

    ended_early = asyncio.run(cancelled_again_and_again(
        make_pull(svc, slots(), "img", [layer]), keeping.is_set, go_on, 20))
    assert not ended_early and kept == [None]
    assert pull_threads() == [] and leftovers(svc) == []


def test_a_session_closes_when_its_opener_and_every_holder_are_done() -> None:
    async def main() -> None:
        s = session()
        release = s.hold()                 # a layer's making
        await s.close()                    # the pull that opened it ends
        assert not s.closed
        await s.close()                    # again: not the making's hold
        assert not s.closed
        release()
        assert s.closed
        release()                          # once only
        assert s.http.closed
    SESSIONS.clear()
    asyncio.run(main())
