"""Build steps become images: the child config (moby's NewChildImage form) and
layers made from a snapshot's upper dir (or a plain staging dir for scratch)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, AsyncIterator

from ..images.difftar import write_diff_tar
from ..images.model import Image
from ..images.service import ImageService
from ..images.newimage import DOCKER_VERSION, parse_platform
from ..util.ids import new_id, now_rfc3339


def child_config(parent: Image | None, config: dict[str, Any], diff_id: str | None,
                 created_by: str) -> bytes:
    """The config of the image one build step makes (diff_id None: no layer)."""
    p = parent.config if parent is not None else {}
    created = now_rfc3339()
    history: dict[str, Any] = {"created": created, "created_by": created_by}
    if diff_id is None:
        history["empty_layer"] = True
    doc: dict[str, Any] = {
        "architecture": p.get("architecture") or parse_platform(None)["architecture"],
        "config": config, "created": created, "docker_version": DOCKER_VERSION,
        "history": list(p.get("history") or []) + [history], "os": p.get("os") or "linux",
        "rootfs": {"type": "layers", "diff_ids": list(parent.diff_ids if parent else [])
                   + ([diff_id] if diff_id else [])}}
    if p.get("variant"):
        doc["variant"] = p["variant"]
    return json.dumps(doc, separators=(",", ":")).encode()


class StepCommitter:
    """Registers build-step images through the ImageService."""

    def __init__(self, images: ImageService) -> None:
        self.images = images

    async def metadata(self, parent: Image | None, config: dict[str, Any],
                       created_by: str) -> Image:
        cfg = child_config(parent, config, None, created_by)
        img: Image = await asyncio.to_thread(
            self.images.register_image, cfg, None, parent.id if parent else "")
        return img

    async def layer(self, parent: Image | None, config: dict[str, Any], upper: str,
                    created_by: str) -> Image:
        return await asyncio.to_thread(self._layer, parent, config, upper, created_by)

    def _layer(self, parent: Image | None, config: dict[str, Any], upper: str,
               created_by: str) -> Image:
        tmp = os.path.join(self.images.tmp_dir, "build-" + os.urandom(8).hex())
        try:
            with open(tmp, "wb") as out:
                write_diff_tar(upper, out, self.images.ids)
            top = parent.layers[-1] if parent is not None and parent.layers else ""
            with open(tmp, "rb") as f:
                info, created = self.images.layers.unpack(f, None, top)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        try:
            cfg = child_config(parent, config, info.diff_id, created_by)
            img: Image = self.images.register_image(cfg, None, parent.id if parent else "")
            return img
        except BaseException:
            if created:
                self.images.drop_unused_layers([info.chain_id])
            raise

    @contextlib.asynccontextmanager
    async def snapshot(self, parent: Image | None) -> AsyncIterator[tuple[str, str]]:
        """(root to write into, upper dir to commit): a temporary rw layer on
        parent, mounted; a plain temp dir for FROM scratch."""
        if parent is None:
            d = tempfile.mkdtemp(prefix="build-", dir=self.images.tmp_dir)
            try:
                yield d, d
            finally:
                await asyncio.to_thread(shutil.rmtree, d, True)
            return
        sid = new_id()
        await asyncio.to_thread(self.images.create_rw_layer, sid, parent)
        try:
            root = await asyncio.to_thread(self.images.mount_rootfs, sid, parent)
            try:
                yield root, self.images.snapshots.upper_dir(sid)
            finally:
                await asyncio.to_thread(self.images.unmount_rootfs, sid)
        finally:
            await asyncio.to_thread(self.images.remove_rw_layer, sid)
