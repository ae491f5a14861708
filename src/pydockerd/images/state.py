"""What every image verb works on: the stores, the lock, events, and lookup by reference.

ImageService (service.py) owns one ImageState and hands it to the verb modules
(tagging, removal, creation, transfer, inspect); they share nothing else.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from ..errors import NotFound
from ..events import EventBus
from ..store import Store
from ..util.idmap import IDENTITY, IdMap
from .content import ContentStore
from .imagestore import ImageStore
from .layers import LayerStore
from .model import Image
from .references import HEX64_RE, Reference, try_parse
from .snapshots import Snapshots

if TYPE_CHECKING:
    from .loader import Loader


class ContainerFacts(Protocol):
    """What the image verbs need to know about containers (rmi conflicts, prune,
    system df): the container registry answers it."""

    def using_image(self, image_id: str) -> list[str]: ...
    def is_running(self, container_id: str) -> bool: ...


class NoContainers:
    """ContainerFacts of a daemon without containers (tools, unit tests)."""

    def using_image(self, image_id: str) -> list[str]:
        return []

    def is_running(self, container_id: str) -> bool:
        return False


@dataclass
class ImageState:
    data_root: str
    storage_driver: str
    db: Store
    events: EventBus
    images: ImageStore
    content: ContentStore
    layers: LayerStore
    snapshots: Snapshots
    tmp_dir: str
    lock: threading.RLock
    containers: ContainerFacts
    ids: IdMap = IDENTITY

    @classmethod
    def open(cls, data_root: str, store: Store, events: EventBus,
             storage_driver: str, containers: ContainerFacts,
             ids: IdMap = IDENTITY,
             layers_purged: Sequence[Callable[[], None]] = ()) -> ImageState:
        images = ImageStore(store)
        content = ContentStore(os.path.join(data_root, "content"))
        layers = LayerStore(os.path.join(data_root, "layers"), store, ids, layers_purged)
        snapshots = Snapshots(data_root, layers, storage_driver, ids)
        tmp_dir = os.path.join(data_root, "tmp")
        lock = threading.RLock()
        return cls(data_root, storage_driver, store, events, images, content, layers,
                   snapshots, tmp_dir, lock, containers, ids)

    @cached_property
    def loader(self) -> Loader:
        """Spools and commits image archives (load, import, commit): built, and its
        modules imported, by the first of them (issue 10: idle memory)."""
        from .loader import Loader
        return Loader(self.tmp_dir, self.db, self.images, self.layers, self.content,
                      self.lock)

    def event(self, action: str, img: Image, name: str) -> None:
        attrs = dict(img.labels)
        attrs["name"] = name
        self.events.publish("image", action, img.id, attrs)

    # --- lookup ------------------------------------------------------------------
    def get(self, image_id: str) -> Image | None:
        """An image by its full id (sha256:<hex>), with its tags."""
        img = self.images.get(image_id)
        return self.images.hydrate(img, self.images.refs_of(image_id)) if img else None

    def lookup(self, ref: str) -> Image | None:
        if not ref:
            return None
        if HEX64_RE.match(ref):
            return self.get("sha256:" + ref)
        if ref.startswith("sha256:") and HEX64_RE.match(ref[7:]):
            return self.get(ref)
        parsed = try_parse(ref)
        if parsed is not None:
            key = Reference(parsed.name, "", parsed.digest) if parsed.digest \
                else parsed.with_default_tag()
            target = self.images.ref_target(key)
            if target:
                img = self.get(target)
                if img:
                    return img
        hexpart = ref[7:] if ref.startswith("sha256:") else ref
        if hexpart and all(c in "0123456789abcdef" for c in hexpart):
            ids = [i for i in self.images.all() if i[7:].startswith(hexpart)]
            if len(ids) == 1:
                return self.get(ids[0])
        return None

    def resolve(self, ref: str) -> Image:
        img = self.lookup(ref)
        if img is None:
            parsed = try_parse(ref)
            shown = parsed.with_default_tag().familiar() if parsed is not None else ref
            raise NotFound(f"No such image: {shown}")
        return img
