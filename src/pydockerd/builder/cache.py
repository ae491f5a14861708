"""The build cache (moby's daemon/images/cache.go).

Local: in memory, (parent image id, created_by) -> the image a step made, while
that image exists. With `cachefrom` images (`docker build --cache-from`), as
dockerd's imageCache: a local hit counts only if it is an ancestor of one of
those images; otherwise a step matches the next history entry of a source image
whose history and layers start with the parent's, and that image (or one rebuilt
from its first layers, for an intermediate step) is the step's result, so images
pulled from a registry (no parent chain) serve as a cache.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from ..images.model import Image
from ..images.service import ImageService
from ..images.newimage import DOCKER_VERSION
from ..util.ids import now_rfc3339


class StepCache:
    def __init__(self, images: ImageService) -> None:
        self.images = images
        self.steps: dict[tuple[str, str], str] = {}    # (parent id, step) -> image id

    def record(self, parent: Image | None, created_by: str, img: Image) -> None:
        self.steps[(parent.id if parent else "", created_by)] = img.id

    def prune(self) -> list[str]:
        deleted = sorted(set(self.steps.values()))
        self.steps.clear()
        return deleted

    async def lookup(self, parent: Image | None, created_by: str, config: dict[str, Any],
                     sources: list[Image]) -> Image | None:
        """The image a step would make, if cached; sources: the cachefrom images."""
        hit = self.steps.get((parent.id if parent else "", created_by))
        img = self.images.get(hit) if hit else None
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
