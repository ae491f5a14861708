"""The build cache (moby's daemon/images/cache.go): the image store itself.

Every build step is an image whose parent is the image the step started from and
whose last history entry is the step (`created_by`: `/bin/sh -c #(nop) ENV ...`,
a COPY's content hash, a RUN's command with its build args). A step is cached
when a child of its parent image (for FROM scratch: an image without parent)
was made by the same step and has the config this step would have (moby's
compare of ContainerConfig); the newest such image wins, as dockerd's. So the
cache lives as long as the images (`docker rmi` of a built image takes its
untagged parents with it), survives a daemon restart, and `POST /build/prune`
leaves it alone (dockerd prunes only BuildKit's cache there).

Finding the children of an image would mean decoding every image record, so the
(parent id, created_by) -> image ids index is read from the store once (on the
first lookup after start) and then kept up to date by `record`; an entry is
checked against its image on every hit (it may have been deleted since).

With `cachefrom` images (`docker build --cache-from`), as dockerd's imageCache:
a local hit counts only if it is an ancestor of one of those images; otherwise
a step matches the next history entry of a source image whose history and
layers start with the parent's, and that image (or one rebuilt from its first
layers, for an intermediate step) is the step's result, so images pulled from a
registry (no parent chain) serve as a cache.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from ..images.model import Image
from ..images.service import ImageService
from ..images.newimage import DOCKER_VERSION
from ..util.ids import now_rfc3339

Key = tuple[str, str]                 # (parent image id or "", created_by)


class StepCache:
    def __init__(self, images: ImageService) -> None:
        self.images = images
        self._index: dict[Key, set[str]] | None = None     # None: not read yet
        self._recorded: list[tuple[Key, str]] = []         # while it is being read

    def record(self, parent: Image | None, created_by: str, img: Image) -> None:
        key = (parent.id if parent else "", created_by)
        if self._index is None:
            self._recorded.append((key, img.id))
        else:
            self._index.setdefault(key, set()).add(img.id)

    async def _steps(self) -> dict[Key, set[str]]:
        if self._index is None:
            index = await asyncio.to_thread(_read_index, self.images)
            if self._index is None:                  # (a concurrent build may have won)
                for key, image_id in self._recorded:
                    index.setdefault(key, set()).add(image_id)
                self._index, self._recorded = index, []
        return self._index

    async def local(self, parent: Image | None, created_by: str,
                    config: dict[str, Any]) -> Image | None:
        """The newest image this step made on parent, with this config."""
        key = (parent.id if parent else "", created_by)
        ids = (await self._steps()).get(key)
        if not ids:
            return None
        best: Image | None = None
        for image_id in sorted(ids):
            img = self.images.images.get(image_id)          # the record, no tags needed
            if img is None or not _is_step(img, parent, created_by):
                ids.discard(image_id)                       # deleted (or replaced) since
                continue
            if img.container_config == config and (best is None or img.created > best.created):
                best = img
        return best

    async def lookup(self, parent: Image | None, created_by: str, config: dict[str, Any],
                     sources: list[Image]) -> Image | None:
        """The image a step would make, if cached; sources: the cachefrom images."""
        img = await self.local(parent, created_by, config)
        if not sources:
            return img
        if img is not None and any(self._is_ancestor(img.id, s) for s in sources):
            return img
        n = len(_history(parent))
        for target in sources:
            history = _history(target)
            if not _valid_parent(target, parent) or n >= len(history) \
                    or history[n].get("created_by") != created_by:
                continue
            if len(history) - 1 == n:
                return target
            restored = await asyncio.to_thread(self._restore, parent, target, config)
            self.record(parent, created_by, restored)
            sources[:] = [target]          # as moby: the next steps follow this one
            return restored
        return None

    def _is_ancestor(self, image_id: str, of: Image) -> bool:
        current: Image | None = of
        seen: set[str] = set()
        while current is not None and current.id not in seen:
            if current.id == image_id:
                return True
            seen.add(current.id)
            current = self.images.get(current.parent) if current.parent else None
        return False

    def _restore(self, parent: Image | None, target: Image,
                 config: dict[str, Any]) -> Image:
        """restoreCachedImage: the parent plus target's history entry (and layer) at
        the parent's depth, with this step's config."""
        n = len(_history(parent))
        entry = _history(target)[n]
        diff_ids = list(parent.diff_ids if parent is not None else [])
        if not entry.get("empty_layer"):
            layer = sum(1 for h in _history(target)[:n] if not h.get("empty_layer"))
            diff_ids.append(target.diff_ids[layer])
        doc: dict[str, Any] = {
            "architecture": target.config.get("architecture") or "amd64",
            "config": config, "created": entry.get("created") or now_rfc3339(),
            "docker_version": DOCKER_VERSION,
            "history": _history(parent) + [entry], "os": target.config.get("os") or "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        if target.config.get("variant"):
            doc["variant"] = target.config["variant"]
        raw = json.dumps(doc, separators=(",", ":")).encode()
        img: Image = self.images.register_image(raw, None, parent.id if parent else "")
        return img


def _read_index(images: ImageService) -> dict[Key, set[str]]:
    """(parent, created_by of the last history entry) -> ids, of every image."""
    index: dict[Key, set[str]] = {}
    for img in images.images.all().values():
        history = _history(img)
        if history:
            key = (img.parent, str(history[-1].get("created_by") or ""))
            index.setdefault(key, set()).add(img.id)
    return index


def _is_step(img: Image, parent: Image | None, created_by: str) -> bool:
    """img is parent plus one history entry made by created_by (and at most one layer)."""
    history, ph = _history(img), _history(parent)
    if img.parent != (parent.id if parent else "") or len(history) != len(ph) + 1 \
            or history[-1].get("created_by") != created_by or history[:-1] != ph:
        return False
    pd = parent.diff_ids if parent is not None else []
    diff_ids = img.diff_ids
    return diff_ids[:len(pd)] == pd and len(diff_ids) - len(pd) == \
        (0 if history[-1].get("empty_layer") else 1)


def _history(img: Image | None) -> list[dict[str, Any]]:
    return list((img.config.get("history") or []) if img is not None else [])


def _valid_parent(img: Image, parent: Image | None) -> bool:
    """isValidParent: img's history and layers start with parent's."""
    history = _history(img)
    if not history:
        return False
    if parent is None:
        return True
    ph = _history(parent)
    if not ph and not parent.diff_ids:
        return True
    if len(ph) >= len(history) or len(parent.diff_ids) > len(img.diff_ids):
        return False
    return history[:len(ph)] == ph and img.diff_ids[:len(parent.diff_ids)] == parent.diff_ids
