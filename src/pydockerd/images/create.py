"""New images from files: register an unpacked image (pull, build, commit, import),
`docker import` (a rootfs tar becomes a one-layer image) and `docker commit` (a
container's rw layer on top of its image); drop_unused_layers undoes a failure."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, AsyncIterator, Protocol

from ..errors import DockerError, InvalidParameter, NotFound
from ..models import ContainerConfig
from ..progress import ErrorEvent, LayerStatus, ProgressEvent, Status
from .archive import ArchiveImage, validate_config
from .changes import apply_changes, split_changes
from .content import digest_of
from ..util.idmap import IdMap
from .difftar import write_diff_tar
from .model import Image, LayerInfo
from .newimage import commit_config, import_config, merge_config, parse_platform
from .references import Reference, repo_tag_reference
from .state import ImageState

log = logging.getLogger("pydockerd.images")


class CommitState(Protocol):
    @property
    def status(self) -> str: ...


class CommitSubject(Protocol):
    """The container being committed, as far as commit reads it."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def image_id(self) -> str: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def state(self) -> CommitState: ...


class CommitContainers(Protocol):
    """The container verbs `docker commit` uses (the container service has them)."""

    def get(self, ref: str) -> CommitSubject: ...
    async def pause(self, ref: str) -> None: ...
    async def unpause(self, ref: str) -> None: ...
    def lock(self, cid: str) -> asyncio.Lock: ...


def register_image(st: ImageState, config_bytes: bytes, refs: list[Reference] | None = None,
                   parent: str = "") -> Image:
    """Record an image whose layers are already unpacked (st.layers.unpack):
    for pull, build and commit. Adds refs (tags or name@digest); publishes no
    events (the caller does: pull, tag...). Blocking only briefly (sqlite)."""
    try:
        config = json.loads(config_bytes)
    except ValueError as e:
        raise InvalidParameter(f"invalid image config: {e}") from e
    diff_ids = validate_config(config_bytes, config, None, "config")
    plan = ArchiveImage(config_bytes, config, digest_of(config_bytes), [], diff_ids,
                        list(refs or []))
    st.loader.commit([plan], parent)
    img = st.get(plan.image_id)
    assert img is not None
    return img


def drop_unused_layers(st: ImageState, chains: list[str]) -> None:
    """Remove these layers unless an image or a container uses them (failure paths)."""
    with st.lock:
        used = {c for img in st.images.all().values() for c in img.layers}
        used |= st.snapshots.layers_in_use()
        doomed = [st.layers.remove(c) for c in chains if c not in used]
    st.layers.purge([d for d in doomed if d])


async def import_image(st: ImageState, chunks: AsyncIterator[bytes] | None, src_url: str | None,
                       repo: str, tag: str, changes: list[str], message: str,
                       platform: str | None) -> AsyncIterator[ProgressEvent]:
    """`docker import`: a (flat, possibly compressed) rootfs tar from the request
    body or an http(s) URL becomes a one-layer image. Yields progress events,
    ending with Status("sha256:<id>") (or an ErrorEvent)."""
    path = ""
    try:
        ref = repo_tag_reference(repo, tag or None) if repo else None
        plat = parse_platform(platform)
        config = apply_changes({}, split_changes(changes))
        if src_url and src_url != "-":
            from .fetch import download
            async for ev, spooled in download(src_url, st.tmp_dir):
                if ev is not None:
                    yield ev
                path = spooled or path
        else:
            if chunks is None:
                raise InvalidParameter("nothing to import: no request body and no URL")
            path = await st.loader.spool(chunks, prefix="import-")
        yield LayerStatus("", "Importing")
        img = await asyncio.to_thread(_import_file, st, path, config, message, plat, ref)
    except DockerError as e:
        yield ErrorEvent(e.message)
        return
    except OSError as e:
        yield ErrorEvent(str(e))
        return
    finally:
        if path and os.path.lexists(path):
            os.unlink(path)
    if ref is not None:
        st.event("tag", img, ref.familiar())
    st.event("import", img, img.id)
    yield Status(img.id)


def _import_file(st: ImageState, path: str, config: dict[str, Any], message: str,
                 plat: dict[str, str], ref: Reference | None) -> Image:
    with open(path, "rb") as f:
        info, created = st.layers.unpack(f, None, "")
    try:
        cfg = import_config(info.diff_id, config, message, plat)
        return register_image(st, cfg, [ref] if ref else None)
    except BaseException:
        if created:
            drop_unused_layers(st, [info.chain_id])
        raise


async def commit(st: ImageState, containers: CommitContainers, container_ref: str,
                 repo: str = "", tag: str = "", comment: str = "", author: str = "", pause: bool = True,
                 changes: list[str] | None = None,
                 config: ContainerConfig | None = None) -> Image:
    """`docker commit`: the container's rw layer becomes a layer on top of its
    image; returns the new image."""
    c = containers.get(container_ref)
    ref = repo_tag_reference(repo, tag or None) if repo else None
    parent = st.get(c.image_id)
    if parent is None:
        raise NotFound(f"No such image: {c.image_id}")
    new_config = apply_changes(merge_config(config, c.config), changes or [])
    tar_path = os.path.join(st.tmp_dir, "commit-" + os.urandom(8).hex())
    paused = False
    if pause and c.state.status == "running":
        try:
            await containers.pause(c.id)
            paused = True
        except DockerError as e:       # it exited meanwhile: dockerd ignores the error
            log.info("commit: could not pause %s: %s", c.id[:12], e)
    try:
        async with containers.lock(c.id):
            upper = st.snapshots.upper_dir(c.id)
            await asyncio.to_thread(_write_diff, upper, tar_path, st.ids)
    finally:
        if paused:
            try:
                await containers.unpause(c.id)
            except DockerError as e:
                log.warning("commit: could not unpause %s: %s", c.id[:12], e)
    try:
        img = await asyncio.to_thread(_commit_layer, st, tar_path, parent, new_config,
                                      c.id, dict(c.config), author, comment, ref)
    finally:
        if os.path.lexists(tar_path):
            os.unlink(tar_path)
    if ref is not None:
        st.event("tag", img, ref.familiar())
    st.events.publish("container", "commit", c.id, {
        "comment": comment, "imageID": img.id,
        "imageRef": ref.familiar() if ref else "", "name": c.name})
    return img


def _write_diff(upper: str, tar_path: str, ids: IdMap) -> None:
    if not os.path.isdir(upper):
        raise NotFound("the container's rw layer is missing")
    with open(tar_path, "wb") as out:
        write_diff_tar(upper, out, ids)


def _commit_layer(st: ImageState, tar_path: str, parent: Image, config: dict[str, Any],
                  cid: str, container_config: dict[str, Any], author: str, comment: str,
                  ref: Reference | None) -> Image:
    top = parent.layers[-1] if parent.layers else ""
    with open(tar_path, "rb") as f:
        info: LayerInfo
        info, created = st.layers.unpack(f, None, top)
    try:
        cfg = commit_config(parent, config, cid, container_config, info.diff_id, author,
                            comment)
        return register_image(st, cfg, [ref] if ref else None, parent=parent.id)
    except BaseException:
        if created:
            drop_unused_layers(st, [info.chain_id])
        raise
