"""Read-only views of images: list (`docker images` filters), history, disk usage,
GraphDriver documents, and container-facing facts (ancestor filter, sizes)."""
from __future__ import annotations

import os
from typing import Protocol

from ..errors import InvalidParameter
from ..util.ids import to_unix
from . import filters as flt
from .layers import chain_ids
from .model import DiskUsage, GraphDriver, HistoryEntry, Image, ImageUsage
from .state import ImageState


def list_images(st: ImageState, all: bool = False, filters: dict[str, list[str]] | None = None,
                digests: bool = False) -> list[Image]:
    filters = filters or {}
    flt.validate(filters)
    dangling_only = flt.dangling_only(filters)
    lower, upper = flt.time_bounds(filters, st.resolve)
    labels = filters.get("label", [])
    patterns = filters.get("reference", [])
    images = st.images.all()
    refs_by = st.images.refs_by_image()
    out = []
    for img in images.values():
        refs = refs_by.get(img.id, [])
        if not refs:
            if not all and st.images.children(img.id, images):
                continue                      # an intermediate image
        elif dangling_only:
            continue
        if patterns:
            refs = flt.matching_refs(refs, patterns)
            if not refs:
                continue
        if labels and not flt.label_match(img, labels):
            continue
        created = to_unix(img.created)
        if (lower is not None and not created > lower) or \
                (upper is not None and not created < upper):
            continue
        out.append(st.images.hydrate(img, refs))
    out.sort(key=lambda i: to_unix(i.created), reverse=True)
    return out


def history(st: ImageState, ref: str) -> list[HistoryEntry]:
    img = st.resolve(ref)
    diff_ids = img.diff_ids
    out: list[HistoryEntry] = []
    n = 0
    for h in img.config.get("history") or []:
        size = 0
        if not h.get("empty_layer"):
            if n >= len(diff_ids):
                raise InvalidParameter("too many non-empty layers in History section")
            info = st.layers.get(chain_ids(diff_ids[:n + 1])[-1])
            size = info.size if info else 0
            n += 1
        out.insert(0, HistoryEntry("<missing>", int(to_unix(str(h.get("created") or ""))),
                                   str(h.get("created_by") or ""), None, size,
                                   str(h.get("comment") or "")))
    cur: Image | None = img
    for entry in out:                 # moby: ids (and tags) follow the parent chain
        if cur is None:
            break
        entry.id = cur.id
        entry.tags = [r.familiar() for r in st.images.refs_of(cur.id)
                      if r.tag and not r.digest] or None
        cur = st.images.get(cur.parent) if cur.parent else None
    return out


def usage(st: ImageState) -> DiskUsage:
    images = list(st.images.all().values())
    refs_by = st.images.refs_by_image()
    layers = st.layers.all()
    users: dict[str, int] = {}
    for img in images:
        for c in img.layers:
            users[c] = users.get(c, 0) + 1
    usage = []
    for img in images:
        shared = sum(layers[c].size for c in img.layers if users[c] > 1 and c in layers)
        usage.append(ImageUsage(st.images.hydrate(img, refs_by.get(img.id, [])), shared,
                                len(st.containers.using_image(img.id))))
    return DiskUsage(sum(i.size for i in layers.values()), usage)


def image_graph_driver(st: ImageState, img: Image) -> GraphDriver:
    """GraphDriver of image inspect (LowerDir, UpperDir, ...)."""
    if st.storage_driver == "vfs" or not img.layers:
        return GraphDriver(st.storage_driver, {})
    top = st.layers.layer_dir(img.layers[-1])
    data = {"MergedDir": os.path.join(top, "merged"), "UpperDir": os.path.join(top, "diff"),
            "WorkDir": os.path.join(top, "work")}
    if len(img.layers) > 1:
        data = {"LowerDir": ":".join(st.layers.diff_dir(c)
                                     for c in reversed(img.layers[:-1])), **data}
    return GraphDriver(st.storage_driver, data)


def ancestors(st: ImageState, image_id: str) -> list[str]:
    """image_id and its parents (nearest first)."""
    out: list[str] = []
    cur: str = image_id
    while cur and cur not in out:
        out.append(cur)
        img = st.images.get(cur)
        cur = img.parent if img else ""
    return out


class HasImage(Protocol):
    """A container, as far as the `ancestor` filter looks at it."""

    @property
    def image_id(self) -> str: ...


def matches_container_image(st: ImageState, ref: str, container: HasImage) -> bool:
    """The containers `ancestor` filter: the container's image is ref or descends
    from it."""
    img = st.lookup(ref)
    if img is None:
        return False
    return img.id in ancestors(st, container.image_id or "")


def graph_driver(st: ImageState, container_id: str, image_id: str) -> dict[str, object]:
    """GraphDriver of container inspect: {"Name", "Data"}."""
    img = st.images.get(image_id)
    data = st.snapshots.graph_driver_data(container_id, img) if img else {}
    return {"Name": st.storage_driver, "Data": data}


def container_size(st: ImageState, container_id: str, image_id: str) -> tuple[int, int]:
    """(SizeRw, SizeRootFs) of a container. Blocking (walks the rw layer)."""
    img = st.images.get(image_id)
    try:
        rw = st.snapshots.rw_size(container_id)
    except OSError:
        rw = 0
    return rw, rw + (img.size if img else 0)
