"""docker push: upload missing layers (HEAD to skip, cross-repo mount, gzip in a
thread, PATCH + PUT upload), the config, then the manifest (schema2)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlencode

from ..errors import DockerError, InvalidParameter, NotFound, SystemError_
from ..events import EventBus
from ..images.references import Reference
from ..images.service import ImageService
from ..progress import (ErrorEvent, LayerStatus, Progress, ProgressEvent, PushedDigest,
                        Status)
from .blobcache import BlobCache, BlobRecord
from .blobupload import absolute, blob_exists, finish_upload, start_upload, upload_bytes
from .client import RegistrySession, registry_error
from .errors import push_error
from .layertar import original_tar_chunks, write_layer_tar
from .manifest import (DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_CONFIG,
                       OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST, Descriptor)
from .transfer import Limiter
from ..util.gzipfast import deflater

log = logging.getLogger("pydockerd.distribution")
Emit = Callable[[ProgressEvent], None]
_TO_DOCKER = {OCI_LAYER_GZIP: DOCKER_LAYER_GZIP,
              OCI_LAYER: "application/vnd.docker.image.rootfs.diff.tar"}
_TO_OCI = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
           "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER}


@dataclass
class PushTarget:
    tag: str
    image_id: str
    config_bytes: bytes
    diff_ids: list[str]
    chains: list[str]


class _HashWriter:
    def __init__(self, out: Any) -> None:
        self.out, self.hash, self.size = out, hashlib.sha256(), 0

    def write(self, b: bytes) -> int:
        self.hash.update(b)
        self.size += len(b)
        self.out.write(b)
        return len(b)

    def flush(self) -> None:
        pass


class _Deflating:
    """A writer that hashes what it is given (the layer tar), deflates it to gzip and
    writes that to `out` (a _HashWriter of the blob file)."""

    def __init__(self, out: _HashWriter) -> None:
        self.out, self.hash, self._z = out, hashlib.sha256(), deflater()

    def write(self, b: bytes) -> int:
        self.hash.update(b)
        if c := self._z.compress(b):
            self.out.write(c)
        return len(b)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.out.write(self._z.flush())


class Push:
    def __init__(self, images: ImageService, cache: BlobCache, events: EventBus, ref: Reference,
                 targets: list[PushTarget], session: RegistrySession, limiter: Limiter) -> None:
        self.images, self.cache, self.events = images, cache, events
        self.ref, self.targets, self.sess = ref, targets, session
        self.repo = ref.path
        self.limiter = limiter          # daemon-wide max-concurrent-uploads

    async def run(self) -> AsyncIterator[ProgressEvent]:
        queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()
        task = asyncio.create_task(self._push_all(queue.put_nowait))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            yield Status(f"The push refers to repository [{self.ref.name}]")
            while (m := await queue.get()) is not None:
                yield m
            try:
                await task
            except Exception as e:       # noqa: BLE001 - every failure ends in the stream
                err = push_error(e)
                log.info("push %s failed: %s", self.ref.name, err.message)
                yield ErrorEvent(err.message)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self.sess.close()

    async def _push_all(self, emit: Emit) -> None:
        await self.sess.ping()
        for t in self.targets:
            await self._push_tag(t, emit)

    async def _push_tag(self, t: PushTarget, emit: Emit) -> None:
        unique: dict[str, str] = {}
        for d, c in zip(t.diff_ids, t.chains):
            unique.setdefault(d, c)
        for d in reversed(list(unique)):
            emit(LayerStatus(msg_id(d), "Preparing"))
        tasks = {d: asyncio.create_task(self._push_layer(d, c, emit))
                 for d, c in unique.items()}
        try:
            descs = {d: await tasks[d] for d in unique}
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        layers = [descs[d] for d in t.diff_ids]
        oci = any(x.media_type == OCI_LAYER_ZSTD for x in layers)
        config_desc = Descriptor(OCI_CONFIG if oci else DOCKER_CONFIG,
                                 "sha256:" + hashlib.sha256(t.config_bytes).hexdigest(),
                                 len(t.config_bytes))
        if not await blob_exists(self.sess, self.repo, config_desc.digest):
            await upload_bytes(self.sess, self.repo, config_desc.digest, t.config_bytes)
        kind = _TO_OCI if oci else _TO_DOCKER
        manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
                    "config": config_desc.to_wire(),
                    "layers": [Descriptor(kind.get(x.media_type, x.media_type), x.digest,
                                          x.size).to_wire() for x in layers]}
        body = json.dumps(manifest, indent=3).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        resp = await self.sess.request(
            "PUT", f"/v2/{self.repo}/manifests/{t.tag}", data=body,
            headers={"Content-Type": manifest["mediaType"]})
        async with resp:
            if resp.status not in (200, 201, 202):
                raise await registry_error(resp)
            got = resp.headers.get("Docker-Content-Digest")
            if got and got != digest:
                raise SystemError_(f"registry reported manifest digest {got}, expected {digest}")
        await asyncio.to_thread(self.images.register_image, t.config_bytes,
                                [Reference(self.ref.name, "", digest)])
        shown = Reference(self.ref.name, t.tag).familiar()
        self.events.publish("image", "push", shown, {"name": shown})
        emit(Status(f"{t.tag}: digest: {digest} size: {len(body)}"))
        emit(PushedDigest(t.tag, digest, len(body)))

    # --- layers -------------------------------------------------------------------------
    async def _push_layer(self, diff_id: str, chain: str, emit: Emit) -> Descriptor:
        sid = msg_id(diff_id)
        if self.limiter.busy():
            emit(LayerStatus(sid, "Waiting"))
        async with self.limiter:
            domain = self.ref.domain
            records = await asyncio.to_thread(self.cache.records, diff_id)
            here = [r for r in records if r.registry == domain]
            for r in here:
                if r.repo == self.repo and await blob_exists(self.sess, self.repo, r.digest):
                    emit(LayerStatus(sid, "Layer already exists"))
                    return Descriptor(r.media_type, r.digest, r.size)
            for r in here:
                if r.repo != self.repo and await self._mount(r):
                    emit(LayerStatus(sid, f"Mounted from {r.repo}"))
                    await asyncio.to_thread(self.cache.add, diff_id, BlobRecord(
                        r.digest, r.media_type, r.size, domain, self.repo))
                    return Descriptor(r.media_type, r.digest, r.size)
            local = await asyncio.to_thread(self.cache.local_blob, diff_id)
            made = ""
            try:
                if local is not None:
                    path, desc = self.cache.blob_path(local.digest), \
                        Descriptor(local.media_type, local.digest, local.size)
                else:
                    made = self.cache.temp_path("push")
                    desc = await asyncio.to_thread(self._compress, diff_id, chain, made)
                    path = made
                if await blob_exists(self.sess, self.repo, desc.digest):
                    emit(LayerStatus(sid, "Layer already exists"))
                else:
                    await self._upload_file(path, desc, sid, emit)
                    emit(LayerStatus(sid, "Pushed"))
                if made:
                    await asyncio.to_thread(self.cache.keep_blob, made, desc.digest)
                    made = ""
                await asyncio.to_thread(self.cache.add, diff_id, BlobRecord(
                    desc.digest, desc.media_type, desc.size, domain, self.repo))
                return desc
            finally:
                if made and os.path.exists(made):
                    os.unlink(made)

    def _compress(self, diff_id: str, chain: str, out_path: str) -> Descriptor:
        """Blocking: gzip the layer tar to out_path, checking it reproduces diff_id."""
        with open(out_path, "wb") as raw:
            outer = _HashWriter(raw)
            inner = _Deflating(outer)
            chunks = original_tar_chunks(self.images, chain)
            if chunks is not None:
                for b in chunks:
                    inner.write(b)
            else:
                write_layer_tar(self.images.layers.diff_dir(chain), inner)
            inner.close()
        if "sha256:" + inner.hash.hexdigest() != diff_id:
            raise SystemError_(
                f"cannot push layer {diff_id}: its tar cannot be reproduced from the unpacked "
                f"layer (the original tar stream was not kept)")
        return Descriptor(DOCKER_LAYER_GZIP, "sha256:" + outer.hash.hexdigest(), outer.size)

    async def _mount(self, r: BlobRecord) -> bool:
        self.sess.add_scope(f"repository:{r.repo}:pull")
        q = urlencode({"mount": r.digest, "from": r.repo})
        resp = await self.sess.request("POST", f"/v2/{self.repo}/blobs/uploads/?{q}", data=b"")
        async with resp:
            if resp.status == 201:
                return True
            if resp.status == 202:           # not mounted: cancel the upload it started
                loc = resp.headers.get("Location")
                if loc:
                    cancel = await self.sess.request("DELETE", absolute(self.sess, loc))
                    cancel.release()
                return False
            if resp.status in (401, 403, 404):
                return False
            raise await registry_error(resp)

    async def _upload_file(self, path: str, desc: Descriptor, sid: str, emit: Emit) -> None:
        loc, chunk_min = await start_upload(self.sess, self.repo)
        total = desc.size
        chunk = max(chunk_min, 0) or total       # monolithic unless chunks are required
        f = await asyncio.to_thread(open, path, "rb")
        sent = 0
        try:
            while sent < total or total == 0:
                n = min(chunk, total - sent)
                start = sent
                last = 0.0

                async def body() -> AsyncIterator[bytes]:
                    nonlocal sent, last
                    left = n
                    while left > 0:
                        b = await asyncio.to_thread(f.read, min(left, 1 << 20))
                        if not b:
                            raise SystemError_("layer blob shrank while uploading")
                        left -= len(b)
                        sent += len(b)
                        now = time.monotonic()
                        if now - last > 0.1:
                            last = now
                            emit(Progress(sid, "Pushing", sent, total))
                        yield b
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Length": str(n)}
                if n:
                    headers["Content-Range"] = f"{start}-{start + n - 1}"
                resp = await self.sess.request("PATCH", loc, data=body(), headers=headers)
                async with resp:
                    if resp.status != 202:
                        raise await registry_error(resp)
                    loc = absolute(self.sess, resp.headers.get("Location") or loc)
                if total == 0:
                    break
            emit(Progress(sid, "Pushing", sent, total))
        finally:
            await asyncio.to_thread(f.close)
        await finish_upload(self.sess, loc, desc.digest)


def msg_id(diff_id: str) -> str:
    return diff_id.split(":", 1)[-1][:12]


def targets_for(images: ImageService, ref: Reference) -> list[PushTarget]:
    """The local images to push: one tag, or every tag of the repository."""
    if ref.digest:
        raise InvalidParameter("cannot push a digest reference")
    if ref.tag:
        tags = [ref.tag]
    else:
        tags = sorted({r.tag for refs in images.images.refs_by_image().values() for r in refs
                       if r.name == ref.name and r.tag})
    out = []
    for tag in tags:
        try:
            img = images.resolve(str(Reference(ref.name, tag)))
        except DockerError:
            img = None
        if img is None:
            continue
        out.append(PushTarget(tag, img.id, images.content.get(img.id), list(img.diff_ids),
                              list(img.layers)))
    if not out:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name()}")
    return out
