"""POST /images/load: spool the upload to disk, then import it in a thread.

Phases (so an invalid archive leaves nothing behind):
1. spool the body to data_root/tmp (decompressed there if it was gzip'd);
2. parse and validate every manifest and config (archive.read_archive);
3. unpack missing layers, verifying each diff id; on any error the layers
   this load created (and no image uses) are removed again;
4. commit images and tags in one Store transaction.
"""
from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, TYPE_CHECKING

from ..errors import DockerError, InvalidParameter, SystemError_, no_space
from ..progress import ErrorEvent, Progress, ProgressEvent, StreamText
from ..store import Store
from .archive import ArchiveImage, ensure_plain_tar, member_file, open_tar, read_archive
from .content import ContentStore
from .imagestore import ImageStore
from .layers import LayerStore, chain_ids, hex_of
from .model import Image
from .references import Reference
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")

Report = Callable[[ProgressEvent], None]
_SPOOL_BATCH = 4 << 20


@dataclass
class Loaded:
    image_id: str
    refs: list[Reference]
    labels: dict[str, str]
    replaced: list[tuple[Reference, str]] = field(default_factory=list)  # (ref, old id)


def loading(layer_id: str, current: int, total: int) -> Progress:
    return Progress(layer_id, "Loading layer", current, total, style="load")


class Loader:
    def __init__(self, tmp_dir: str, store: Store, images: ImageStore, layers: LayerStore,
                 content: ContentStore, lock: threading.RLock) -> None:
        self.tmp_dir = tmp_dir
        self._db = store
        self._images = images
        self._layers = layers
        self._content = content
        self._lock = lock

    async def spool(self, chunks: AsyncIterator[bytes], prefix: str = "load-") -> str:
        """Write the request body to a temp file (in batches, off the event loop)."""
        path = os.path.join(self.tmp_dir, prefix + os.urandom(8).hex())
        f = await asyncio.to_thread(open, path, "wb")
        try:
            buf = bytearray()
            async for chunk in chunks:
                buf += chunk
                if len(buf) >= _SPOOL_BATCH:
                    await asyncio.to_thread(f.write, bytes(buf))
                    buf.clear()
            if buf:
                await asyncio.to_thread(f.write, bytes(buf))
            await asyncio.to_thread(f.close)
        except BaseException:
            f.close()
            os.unlink(path)
            raise
        return path

    # --- the import, in a worker thread ---------------------------------------------
    def import_file(self, spool_path: str, progress: Report | None) -> list[Loaded]:
        created: list[str] = []
        paths = [spool_path]
        try:
            path = ensure_plain_tar(spool_path)
            paths.append(path)
            with open_tar(path) as tar:
                plans = read_archive(tar)
                for plan in plans:
                    self._unpack_layers(tar, plan, created, progress)
            return self.commit(plans)
        except tarfile.TarError as e:        # truncated or corrupt past its first header
            self._rollback(created)
            raise InvalidParameter(f"invalid archive: {e}") from e
        except BaseException:
            self._rollback(created)
            raise
        finally:
            for p in paths:
                if os.path.lexists(p):
                    os.unlink(p)

    def _unpack_layers(self, tar: Any, plan: ArchiveImage, created: list[str],
                       progress: Report | None) -> None:
        parent = ""
        for member, diff_id, chain in zip(plan.layer_members, plan.diff_ids,
                                          chain_ids(plan.diff_ids)):
            if not self._layers.exists(chain):
                src = member_file(tar, member)
                total = int(getattr(getattr(src, "raw", None), "size", 0) or 0)
                short = hex_of(diff_id)[:12]
                if progress:
                    progress(loading(short, 0, total))
                _, was_created = self._layers.unpack(src, diff_id, parent)
                if was_created:
                    created.append(chain)
                if progress:
                    progress(loading(short, total, total))
            parent = chain

    def commit(self, plans: list[ArchiveImage], parent: str = "") -> list[Loaded]:
        """Record images whose layers are all in the layer store, with their refs."""
        out: list[Loaded] = []
        with self._lock, self._db.transaction():
            for plan in plans:
                chain = chain_ids(plan.diff_ids)
                infos = [self._layers.get(c) for c in chain]
                if any(i is None for i in infos):
                    raise SystemError_(f"a layer of image {plan.image_id} vanished during load")
                self._content.put(plan.config_bytes)
                old = self._images.get(plan.image_id)
                img = Image(plan.image_id, plan.config, chain,
                            sum(i.size for i in infos if i is not None),
                            parent=parent or (old.parent if old else ""),
                            last_tag_time=old.last_tag_time if old else "")
                self._images.put(img)
                loaded = Loaded(plan.image_id, plan.refs, img.labels)
                for ref in plan.refs:
                    prev = self._images.ref_target(ref)
                    if prev and prev != plan.image_id:
                        loaded.replaced.append((ref, prev))
                    self._images.put_ref(ref, plan.image_id)
                out.append(loaded)
        return out

    def _rollback(self, created: list[str]) -> None:
        doomed = []
        with self._lock:
            used = {c for img in self._images.all().values() for c in img.layers}
            for chain in reversed(created):
                if chain not in used:
                    doomed.append(self._layers.remove(chain))
        self._layers.purge([d for d in doomed if d])

    # --- the stream -------------------------------------------------------------------
    async def run(self, chunks: AsyncIterator[bytes], quiet: bool,
                  on_loaded: Callable[[Loaded], None]) -> AsyncIterator[ProgressEvent]:
        """Yield the load's progress events; on_loaded runs on the loop per image
        (events). An error before the first event is raised (the API answers it with
        a plain status, as dockerd does before its output is flushed); after it, it
        ends the stream as an ErrorEvent."""
        path = await self.spool(chunks)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()

        def progress(msg: ProgressEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, msg)

        def work() -> list[Loaded]:
            try:
                return self.import_file(path, None if quiet else progress)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        fut = loop.run_in_executor(None, work)
        flushed = False
        while (msg := await queue.get()) is not None:
            flushed = True
            yield msg
        try:
            results = await fut
        except DockerError as e:
            if not flushed:
                raise
            yield ErrorEvent(e.message)
            return
        except OSError as e:
            err = no_space(e) or SystemError_(
                f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
            if not flushed:
                raise err from e
            yield ErrorEvent(err.message)
            return
        for loaded in results:
            for ref, old in loaded.replaced:
                yield StreamText(f"The image {ref.familiar()} already exists, "
                                 f"renaming the old one with ID {old} to empty string\n")
            for ref in loaded.refs:
                yield StreamText(f"Loaded image: {ref.familiar()}\n")
            on_loaded(loaded)
        if results and not any(loaded.refs for loaded in results):
            for loaded in results:
                yield StreamText(f"Loaded image ID: {loaded.image_id}\n")
