"""ImageService: the images area of the daemon, a thin front over one verb module each:

    state.py      the stores, lock, events; get / lookup / resolve by reference
    views.py      list, history, disk usage, GraphDriver, container sizes, ancestors
    tag.py        tag
    remove.py     rmi (untag/delete with moby's conflicts) and prune
    create.py     register_image (pull, build), import, commit, drop_unused_layers
    transfer.py   load and save (resolution first, then the archive streams)
    snapshots.py  containers' rw layers and root filesystems

Snapshot methods (create_rw_layer, mount_rootfs, unmount_rootfs,
remove_rw_layer, changes, rw_size, graph_driver_data) are available both as
`ImageService.<name>` and `ImageService.snapshots.<name>`; they block, so call
them with asyncio.to_thread from async code.

Facts about containers (which use an image, which run: rmi conflicts, prune,
system df) come from the `containers` given to the constructor, a ContainerFacts
(state.py; the daemon passes the container registry). `commit` gets the
container verbs it needs as a CommitContainers (create.py) per call.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from typing import TYPE_CHECKING, AsyncIterator, Callable, Sequence

from ..events import EventBus
from ..instruments import NO_TIMER, ActionTimer, timed
from ..models import ContainerConfig
from ..progress import ProgressEvent
from ..store import Store
from ..util.idmap import IDENTITY, IdMap
from . import views
from . import tag as tagging
from .content import ContentStore
from .imagestore import ImageStore
from .layers import LayerStore
from .model import DeleteRecord, DiskUsage, GraphDriver, HistoryEntry, Image
from .references import Reference
from .snapshots import Snapshots, mounted
from .state import ContainerFacts, ImageState
from .views import HasImage
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    from . import create, transfer
    from . import remove as removal
    from .create import CommitContainers
else:   # new images (pull, build, import, commit), load/save and rmi/prune: their
    # modules (tar, diff and config handling) load with the first (issue 10: idle memory)
    create = lazy_import("pydockerd.images.create")
    removal = lazy_import("pydockerd.images.remove")
    transfer = lazy_import("pydockerd.images.transfer")


class ImageService:
    def __init__(self, data_root: str, store: Store, events: EventBus,
                 storage_driver: str = "overlay2", *, containers: ContainerFacts,
                 container_actions: ActionTimer = NO_TIMER, ids: IdMap = IDENTITY,
                 layers_purged: Sequence[Callable[[], None]] = ()) -> None:
        """layers_purged: called (in a worker thread, no lock held) after layer
        directories were purged, for others' caches to follow (the registry blobs)."""
        driver = "overlay2" if storage_driver == "overlay" else storage_driver
        self._state = ImageState.open(data_root, store, events, driver, containers, ids,
                                      layers_purged)
        self._events = events
        self._container_actions = container_actions   # "changes" and "commit", as dockerd

    # --- the parts other areas use (distribution, builder, system) -------------------------
    @property
    def data_root(self) -> str:
        return self._state.data_root

    @property
    def ids(self) -> IdMap:
        """The daemon's userns remapping (identity without --userns-remap)."""
        return self._state.ids

    @property
    def storage_driver(self) -> str:
        return self._state.storage_driver

    @property
    def images(self) -> ImageStore:
        return self._state.images

    @property
    def content(self) -> ContentStore:
        return self._state.content

    @property
    def layers(self) -> LayerStore:
        return self._state.layers

    @property
    def snapshots(self) -> Snapshots:
        return self._state.snapshots

    @property
    def tmp_dir(self) -> str:
        return self._state.tmp_dir

    # --- start-up ----------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._setup)

    def _setup(self) -> None:
        os.makedirs(self.tmp_dir, exist_ok=True)
        for name in os.listdir(self.tmp_dir):
            if name.startswith(("load-", "import-", "commit-")):
                p = os.path.join(self.tmp_dir, name)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        os.makedirs(self.snapshots.containers_root, exist_ok=True)
        self.content.setup()
        self.layers.setup()

    # --- lookup and views (views.py) ----------------------------------------------------
    def get(self, image_id: str) -> Image | None:
        """An image by its full id (sha256:<hex>), with its tags."""
        return self._state.get(image_id)

    def resolve(self, ref: str) -> Image:
        return self._state.resolve(ref)

    def list_images(self, all: bool = False, filters: dict[str, list[str]] | None = None,
                    digests: bool = False) -> list[Image]:
        return views.list_images(self._state, all, filters, digests)

    def history(self, ref: str) -> list[HistoryEntry]:
        return views.history(self._state, ref)

    def usage(self) -> DiskUsage:
        """For GET /system/df and `docker images --shared-size`. Blocking (briefly)."""
        return views.usage(self._state)

    def image_graph_driver(self, img: Image) -> GraphDriver:
        """GraphDriver of image inspect (LowerDir, UpperDir, ...)."""
        return views.image_graph_driver(self._state, img)

    def ancestors(self, image_id: str) -> list[str]:
        """image_id and its parents (nearest first)."""
        return views.ancestors(self._state, image_id)

    def matches_container_image(self, ref: str, container: HasImage) -> bool:
        """The containers `ancestor` filter: the container's image is ref or descends
        from it."""
        return views.matches_container_image(self._state, ref, container)

    def graph_driver(self, container_id: str, image_id: str) -> dict[str, object]:
        """GraphDriver of container inspect: {"Name", "Data"}."""
        return views.graph_driver(self._state, container_id, image_id)

    def container_size(self, container_id: str, image_id: str) -> tuple[int, int]:
        """(SizeRw, SizeRootFs) of a container. Blocking (walks the rw layer)."""
        return views.container_size(self._state, container_id, image_id)

    def require_space(self, what: str) -> None:
        """NoSpace now, before `what` (a new image, layer or tag) starts, on a full disk:
        the store's reserve is for removals and state changes, not for new things."""
        self._state.db.require_space(what)

    # --- tag, remove, prune ------------------------------------------------------------------
    def tag(self, source_ref: str, repo: str, tag: str | None = None) -> str:
        """Tag an image; returns the familiar new reference (busybox:mine)."""
        self.require_space(f"tag {repo}")
        return tagging.tag(self._state, source_ref, repo, tag)

    def remove(self, ref: str, force: bool = False, noprune: bool = False
               ) -> list[DeleteRecord]:
        """Untag/delete like `docker rmi`; DeleteRecords (untagged, then deleted).

        Blocking when layers are deleted: from async code prefer remove_async.
        """
        return removal.remove(self._state, ref, force, noprune)

    async def remove_async(self, ref: str, force: bool = False, noprune: bool = False
                           ) -> list[DeleteRecord]:
        """remove() with the disk work in a thread; events published on the loop."""
        return await removal.remove_async(self._state, ref, force, noprune)

    async def prune(self, filters: dict[str, list[str]] | None = None
                    ) -> tuple[list[DeleteRecord], int]:
        """POST /images/prune: (DeleteRecords, bytes reclaimed)."""
        return await removal.prune(self._state, filters)

    # --- new images (create.py) ----------------------------------------------------------------
    def register_image(self, config_bytes: bytes, refs: list[Reference] | None = None,
                       parent: str = "") -> Image:
        """Record an image whose layers are already unpacked (self.layers.unpack):
        for pull, build and commit. Adds refs (tags or name@digest); publishes no
        events (the caller does: pull, tag...). Blocking only briefly (sqlite)."""
        return create.register_image(self._state, config_bytes, refs, parent)

    def drop_unused_layers(self, chains: list[str]) -> None:
        """Remove these layers unless an image or a container uses them (failure paths)."""
        create.drop_unused_layers(self._state, chains)

    def import_image(self, chunks: AsyncIterator[bytes] | None, src_url: str | None,
                     repo: str, tag: str, changes: list[str], message: str,
                     platform: str | None) -> AsyncIterator[ProgressEvent]:
        """`docker import`: a (flat, possibly compressed) rootfs tar from the request
        body or an http(s) URL becomes a one-layer image. Yields progress events,
        ending with Status("sha256:<id>") (or an ErrorEvent)."""
        self.require_space("import")
        return create.import_image(self._state, chunks, src_url, repo, tag, changes,
                                   message, platform)

    async def commit(self, containers: CommitContainers, container_ref: str, repo: str = "", tag: str = "",
                     comment: str = "", author: str = "", pause: bool = True,
                     changes: list[str] | None = None,
                     config: ContainerConfig | None = None) -> Image:
        """`docker commit`: the container's rw layer becomes a layer on top of its
        image; returns the new image. containers: the container verbs it uses (get,
        pause, unpause, lock: the ContainerService)."""
        self.require_space(f"commit {container_ref}")
        with timed(self._container_actions, "commit"):
            return await create.commit(self._state, containers, container_ref, repo, tag,
                                       comment, author, pause, changes, config)

    # --- load / save (transfer.py) ---------------------------------------------------------
    def load(self, chunks: AsyncIterator[bytes], quiet: bool = True
             ) -> AsyncIterator[ProgressEvent]:
        """Import a `docker save` archive, yielding its progress events."""
        self.require_space("load")
        return transfer.load(self._state, chunks, quiet)

    def save(self, names: list[str]) -> AsyncIterator[bytes]:
        """`docker save`: resolve every name now (so a bad one is a 404 before any
        byte is sent), then stream the archive built in a worker thread."""
        return transfer.save(self._state, names)

    # --- snapshots (blocking: use asyncio.to_thread) --------------------------------------
    def create_rw_layer(self, container_id: str, image: Image, durable: bool = True) -> None:
        self.snapshots.create_rw_layer(container_id, image, durable)

    def mount_rootfs(self, container_id: str, image: Image | None = None,
                     volatile: bool = False) -> str:
        return self.snapshots.mount_rootfs(container_id, image, volatile)

    def unmount_rootfs(self, container_id: str) -> None:
        self.snapshots.unmount_rootfs(container_id)

    def rootfs_mounted(self, container_id: str) -> bool:
        return self.snapshots.driver != "vfs" and \
            mounted(self.snapshots.rootfs_path(container_id))

    def remove_rw_layer(self, container_id: str) -> None:
        self.snapshots.remove_rw_layer(container_id)

    def changes(self, container_id: str) -> list[dict[str, object]]:
        with timed(self._container_actions, "changes"):
            return self.snapshots.changes(container_id)

    def rw_size(self, container_id: str) -> int:
        return self.snapshots.rw_size(container_id)

    def graph_driver_data(self, container_id: str, image: Image) -> dict[str, str]:
        return self.snapshots.graph_driver_data(container_id, image)
