"""docker pull: resolve the manifest (before the response starts), then download
layers concurrently, verify every digest, unpack in order, register the image.

On any failure the layers this pull created are removed again and the
downloads deleted: nothing of a failed pull stays behind.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable


from ..errors import DockerError, InvalidParameter, NotFound
from ..events import EventBus
from ..images.content import digest_of
from ..images.layers import chain_ids
from ..images.references import Reference
from ..images.service import ImageService
from ..progress import ErrorEvent, LayerStatus, ProgressEvent, Status
from .blobcache import BlobCache, BlobRecord
from .client import RegistrySession, TransportError, describe, registry_error
from .errors import pull_error
from .flights import Claim
from ..util.tasks import wait_out
from .layerpull import LayerJob, PullSlots, pull_layer
from .manifest import (ACCEPT, Descriptor, ImageManifest, ManifestList,
                       Platform, config_platform, parse_manifest, select)
from ..util.httpclient import HTTPError, Response

log = logging.getLogger("pydockerd.distribution")

Emit = Callable[[ProgressEvent], None]
_MANIFEST_LIMIT = 4 << 20


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


async def read_body(resp: Response, limit: int, what: str) -> bytes:
    try:
        body = await resp.read(limit + 1)
    except (HTTPError, OSError) as e:
        raise TransportError(describe(resp.method, str(resp.url), e, body=True)) from None
    if len(body) > limit:
        raise InvalidParameter(f"{what} too large")
    if resp.content_length is not None and len(body) != resp.content_length:
        raise TransportError(f'{resp.method.capitalize()} "{resp.url}": unexpected EOF')
    return body


async def fetch_manifest(sess: RegistrySession, repo: str, reference: str
                         ) -> tuple[bytes, str, str]:
    """(body, content type, digest), verified against a requested digest or the
    registry's Docker-Content-Digest."""
    resp = await sess.request("GET", f"/v2/{repo}/manifests/{reference}",
                              headers={"Accept": ACCEPT})
    async with resp:
        if resp.status != 200:
            raise await registry_error(resp)
        body = await read_body(resp, _MANIFEST_LIMIT, "manifest")
        digest = digest_of(body)
        expected = reference if reference.startswith("sha256:") else \
            resp.headers.get("Docker-Content-Digest", "")
        if expected and expected.startswith("sha256:") and expected != digest:
            raise InvalidParameter(f"manifest verification failed for digest {expected}")
        return body, resp.headers.get("Content-Type", ""), digest


async def fetch_blob_bytes(sess: RegistrySession, repo: str, desc: Descriptor,
                           limit: int = 16 << 20) -> bytes:
    resp = await sess.request("GET", f"/v2/{repo}/blobs/{desc.digest}")
    async with resp:
        if resp.status != 200:
            raise await registry_error(resp)
        body = await read_body(resp, limit, "blob")
    if digest_of(body) != desc.digest:
        raise InvalidParameter(f"blob verification failed for digest {desc.digest}")
    return body


@dataclass
class Resolved:
    """A manifest resolved to one image, with its verified config."""

    session: RegistrySession
    repo: str
    manifest_digest: str          # what was asked for (the list's digest for a list)
    manifest: ImageManifest
    config_bytes: bytes
    config: dict[str, Any]
    diff_ids: list[str] = field(default_factory=list)


async def resolve_image(sess: RegistrySession, repo: str, reference: str, name: str,
                        wanted: Platform, explicit: bool) -> Resolved:
    body, ctype, digest = await fetch_manifest(sess, repo, reference)
    top_digest = digest
    m = parse_manifest(body, ctype, name)
    from_list = isinstance(m, ManifestList)
    if isinstance(m, ManifestList):
        chosen = select(m, wanted)
        body, ctype, _ = await fetch_manifest(sess, repo, chosen.digest)
        m = parse_manifest(body, ctype, name)
        if not isinstance(m, ImageManifest):
            raise InvalidParameter("invalid manifest list: nested lists are not supported")
    config_bytes = await fetch_blob_bytes(sess, repo, m.config)
    try:
        config = json.loads(config_bytes)
    except ValueError:
        raise InvalidParameter("invalid image config: not JSON") from None
    if not isinstance(config, dict):
        raise InvalidParameter("invalid image config")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if not isinstance(diff_ids, list) or len(diff_ids) != len(m.layers):
        raise InvalidParameter("invalid image config: the number of diff ids does not "
                               "match the number of layers")
    if explicit and not from_list:
        have = config_platform(config)
        if (have.os, have.architecture) != (wanted.os, wanted.architecture):
            raise NotFound(f"image with reference {name} was found but does not provide "
                           f"the specified platform ({wanted})")
    return Resolved(sess, repo, top_digest, m, config_bytes, config, list(diff_ids))


class Pull:
    """One pull after resolution: run() yields its progress events."""

    def __init__(self, images: ImageService, cache: BlobCache, events: EventBus, ref: Reference,
                 res: Resolved, slots: PullSlots, attempts: int) -> None:
        self.images, self.cache, self.events = images, cache, events
        self.ref, self.res = ref, res
        self.slots = slots              # daemon-wide limits and layers in flight
        self.attempts = attempts        # max-download-attempts
        self._chains = chain_ids(res.diff_ids)

    async def run(self) -> AsyncIterator[ProgressEvent]:
        queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()
        task = asyncio.create_task(self._pull(queue.put_nowait))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            yield Status(f"Pulling from {self.ref.familiar_name()}",
                         self.ref.tag or self.ref.digest)
            while (m := await queue.get()) is not None:
                yield m
            try:
                await task
            except Exception as e:       # noqa: BLE001 - every failure ends in the stream
                err = pull_error(e, self.ref)
                log.info("pull %s failed: %s", self.ref, err.message)
                yield ErrorEvent(err.message)
        finally:
            if not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:    # noqa: BLE001
                    pass
            await self.res.session.close()

    async def _pull(self, emit: Emit) -> None:
        res = self.res
        layers = res.manifest.layers
        chains = self._chains
        claim = self.slots.flights.claim(chains)     # flights.py
        tasks: dict[int, asyncio.Task[None]] = {}
        ok = False
        try:
            # (cancelled here, the pull fails as any: layers handed over are dropped)
            await self.slots.flights.cleared(claim)
            present = await asyncio.to_thread(lambda: [self.images.layers.exists(c)
                                                       for c in chains])
            for desc, have in zip(layers, present):
                emit(LayerStatus(short(desc.digest),
                                 "Already exists" if have else "Pulling fs layer"))
            parents = [""] + chains[:-1]
            for i, (desc, have) in enumerate(zip(layers, present)):
                if not have:
                    job = LayerJob(self.images.layers, res.session, res.repo, desc,
                                   res.diff_ids[i], parents[i], chains[i],
                                   self.cache.temp_path("pull"), self._keeper(i),
                                   self.attempts, claim, emit)
                    tasks[i] = asyncio.create_task(pull_layer(job, self.slots))
            await self._layers_done(tasks, emit)
            await self._register(emit)
            ok = True
        finally:
            await wait_out(self._end(tasks, claim, ok))

    async def _layers_done(self, tasks: dict[int, asyncio.Task[None]], emit: Emit) -> None:
        """`Pull complete` for each layer in order; the first failure of any ends it."""
        order = sorted(tasks)
        while order:
            first = tasks[order[0]]
            if first.done():
                first.result()
                emit(LayerStatus(short(self.res.manifest.layers[order.pop(0)].digest),
                                 "Pull complete"))
                continue
            done, _ = await asyncio.wait([tasks[i] for i in order],
                                         return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t.cancelled() or t.exception() is not None:
                    t.result()

    async def _end(self, tasks: dict[int, asyncio.Task[None]], claim: Claim, ok: bool
                   ) -> None:
        """Run to its end whatever cancels the pull: every layer task (and its unpack
        thread) over, then the blobs kept or everything this pull made undone."""
        for t in tasks.values():
            t.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        doomed = self.slots.flights.release(claim, failed=not ok)
        try:
            await asyncio.to_thread(self._finish, ok, doomed)
        finally:
            self.slots.flights.dropped(doomed)

    # --- finish -------------------------------------------------------------------------
    async def _register(self, emit: Emit) -> None:
        ref, res = self.ref, self.res
        digest_ref = Reference(ref.name, "", res.manifest_digest)
        named = ref if not ref.digest else digest_ref
        try:
            old_id = self.images.resolve(str(named)).id
        except DockerError:
            old_id = ""
        refs = [digest_ref] if ref.digest else [Reference(ref.name, ref.tag), digest_ref]
        img = await asyncio.to_thread(self.images.register_image, res.config_bytes, refs)
        shown = named.familiar()
        self.events.publish("image", "pull", shown, {**img.labels, "name": shown})
        emit(Status(f"Digest: {res.manifest_digest}"))
        if old_id == img.id:
            emit(Status(f"Status: Image is up to date for {shown}"))
        else:
            emit(Status(f"Status: Downloaded newer image for {shown}"))

    def _record(self, i: int) -> None:
        res, desc = self.res, self.res.manifest.layers[i]
        self.cache.add(res.diff_ids[i], BlobRecord(desc.digest, desc.media_type, desc.size,
                                                   self.ref.domain, res.repo))

    def _keeper(self, i: int) -> Callable[[str, str], None]:
        """Blocking, for the layer's making: its verified blob kept, recorded first
        (a blob cache gc keeps only recorded blobs of present layers)."""
        def keep(path: str, digest: str) -> None:
            self._record(i)
            self.cache.keep_blob(path, digest)
        return keep

    def _finish(self, ok: bool, doomed: list[str]) -> None:
        """Blocking: on success record where each layer's blob lives (the making kept
        the blob: layerpull.py); on failure drop the layers made (those no other
        pull holds: flights.py), and the kept blobs with them."""
        if ok:
            for i in range(len(self.res.manifest.layers)):
                self._record(i)
        else:
            self.images.drop_unused_layers(list(reversed(doomed)))
