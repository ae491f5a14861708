"""ImageService: the images area of the daemon (lookup, list, tag, remove, load)
and, delegated to `self.snapshots`, containers' root filesystems.

Snapshot methods (create_rw_layer, mount_rootfs, unmount_rootfs,
remove_rw_layer, changes, rw_size, graph_driver_data) are available both as
`ImageService.<name>` and `ImageService.snapshots.<name>`; they block, so call
them with asyncio.to_thread from async code.

The daemon sets two callbacks after construction:
    containers_using(image_id) -> [container ids]     (default: none)
    container_is_running(container_id) -> bool         (default: False)
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from ..errors import Conflict, DockerError, InvalidParameter, NotFound
from ..events import EventBus
from ..store import Store
from ..util.ids import now_rfc3339, to_unix
from . import filters as flt
from .archive import ArchiveImage, validate_config
from .content import ContentStore, digest_of
from .imagestore import ImageStore
from .layers import LayerStore, chain_ids
from .changes import apply_changes, split_changes
from .difftar import write_diff_tar
from .loader import Loaded, Loader, error_line, json_line
from .newimage import commit_config, import_config, merge_config, parse_platform
from .save import SaveItem, write_archive
from ..util.threadstream import from_thread
from .model import DiskUsage, HistoryEntry, Image, ImageUsage, LayerInfo
from .references import HEX64_RE, Reference, parse_normalized, repo_tag_reference, try_parse
from .snapshots import Snapshots
from .wire import LATEST, disk_usage_to_wire

log = logging.getLogger("pydockerd.images")


class _DeleteConflict(Exception):
    def __init__(self, image: Image, message: str, hard: bool, used: bool = False) -> None:
        super().__init__(message)
        self.image, self.message, self.hard, self.used = image, message, hard, used

    def error(self) -> Conflict:
        force = "cannot be forced" if self.hard else "must be forced"
        return Conflict(f"conflict: unable to delete {self.image.short_id} ({force}) - "
                        f"{self.message}")


def _is_single_reference(refs: list[Reference]) -> bool:
    """moby's isSingleReference: one repository, at most one tag."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: Reference | None = None
    canonical: set[str] = set()
    for r in refs:
        if r.digest:
            canonical.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    single = single or refs[0]
    return len(canonical) == 1 and single.name in canonical


def _is_id_prefix(image_id: str, ref: str) -> bool:
    hexpart = image_id.split(":", 1)[1]
    r = ref[len("sha256:"):] if ref.startswith("sha256:") else ref
    return bool(r) and hexpart.startswith(r)


@dataclass
class _Removal:
    """What one remove() did: API records, events to publish, layer dirs to purge."""

    records: list[dict[str, str]] = field(default_factory=list)
    events: list[tuple[str, Image, str]] = field(default_factory=list)
    doomed: list[str] = field(default_factory=list)


class ImageService:
    def __init__(self, data_root: str, store: Store, events: EventBus,
                 storage_driver: str = "overlay2") -> None:
        self.data_root = data_root
        self.storage_driver = "overlay2" if storage_driver == "overlay" else storage_driver
        self._events = events
        self._db = store
        self.images = ImageStore(store)
        self.content = ContentStore(os.path.join(data_root, "content"))
        self.layers = LayerStore(os.path.join(data_root, "layers"), store)
        self.snapshots = Snapshots(data_root, self.layers, self.storage_driver)
        self.tmp_dir = os.path.join(data_root, "tmp")
        self._lock = threading.RLock()
        self._loader = Loader(self.tmp_dir, store, self.images, self.layers, self.content,
                              self._lock)
        self.containers_using: Callable[[str], list[str]] = lambda image_id: []
        self.container_is_running: Callable[[str], bool] = lambda container_id: False

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

    # --- events ------------------------------------------------------------------
    def _event(self, action: str, img: Image, name: str) -> None:
        attrs = dict(img.labels)
        attrs["name"] = name
        self._events.publish("image", action, img.id, attrs)

    # --- lookup ------------------------------------------------------------------
    def get(self, image_id: str) -> Image | None:
        """An image by its full id (sha256:<hex>), with its tags."""
        img = self.images.get(image_id)
        return self.images.hydrate(img, self.images.refs_of(image_id)) if img else None

    def _lookup(self, ref: str) -> Image | None:
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
        img = self._lookup(ref)
        if img is None:
            parsed = try_parse(ref)
            shown = parsed.with_default_tag().familiar() if parsed is not None else ref
            raise NotFound(f"No such image: {shown}")
        return img

    def list_images(self, all: bool = False, filters: dict[str, list[str]] | None = None,
                    digests: bool = False) -> list[Image]:
        filters = filters or {}
        flt.validate(filters)
        dangling_only = flt.dangling_only(filters)
        lower, upper = flt.time_bounds(filters, self.resolve)
        labels = filters.get("label", [])
        patterns = filters.get("reference", [])
        images = self.images.all()
        refs_by = self.images.refs_by_image()
        out = []
        for img in images.values():
            refs = refs_by.get(img.id, [])
            if not refs:
                if not all and self.images.children(img.id, images):
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
            out.append(self.images.hydrate(img, refs))
        out.sort(key=lambda i: to_unix(i.created), reverse=True)
        return out

    # --- tag / untag -----------------------------------------------------------------
    def tag(self, source_ref: str, repo: str, tag: str | None = None) -> str:
        """Tag an image; returns the familiar new reference (busybox:mine)."""
        ref = repo_tag_reference(repo, tag)
        if ref.familiar_name() == "sha256":
            raise InvalidParameter(
                "refusing to create an ambiguous tag using digest algorithm as name")
        with self._lock:
            img = self.resolve(source_ref)
            with self._db.transaction():
                self.images.put_ref(ref, img.id)
                stored = self.images.get(img.id)
                if stored:
                    stored.last_tag_time = now_rfc3339()
                    self.images.put(stored)
        self._event("tag", img, ref.familiar())
        return ref.familiar()

    # --- remove --------------------------------------------------------------------------
    def remove(self, ref: str, force: bool = False, noprune: bool = False
               ) -> list[dict[str, str]]:
        """Untag/delete like `docker rmi`; records [{"Untagged"}, {"Deleted"}...].

        Blocking when layers are deleted: from async code prefer remove_async.
        """
        op = _Removal()
        with self._lock:
            self._remove(ref, force, not noprune, op)
        self._finish_removal(op)
        self.layers.purge(op.doomed)
        return op.records

    async def remove_async(self, ref: str, force: bool = False, noprune: bool = False
                           ) -> list[dict[str, str]]:
        """remove() with the disk work in a thread; events published on the loop."""
        op = _Removal()

        def work() -> None:
            with self._lock:
                self._remove(ref, force, not noprune, op)

        try:
            await asyncio.to_thread(work)
        finally:
            self._finish_removal(op)
        await asyncio.to_thread(self.layers.purge, op.doomed)
        return op.records

    def _finish_removal(self, op: _Removal) -> None:
        for action, img, name in op.events:
            self._event(action, img, name)

    def _untag(self, img: Image, ref: Reference, op: _Removal) -> None:
        self.images.delete_ref(ref)
        op.records.append({"Untagged": ref.familiar()})
        op.events.append(("untag", img, img.id))

    def _remove(self, ref: str, force: bool, prune: bool, op: _Removal) -> None:
        img = self.resolve(ref)
        refs = self.images.refs_of(img.id)
        removed_repo_ref = False
        if not _is_id_prefix(img.id, ref):
            if not force and _is_single_reference(refs):
                using = self.containers_using(img.id)
                if using:
                    raise Conflict(
                        f"conflict: unable to remove repository reference \"{ref}\" (must force)"
                        f" - container {using[0][:12]} is using its referenced image "
                        f"{img.short_id}")
            parsed = parse_normalized(ref)
            parsed = Reference(parsed.name, "", parsed.digest) if parsed.digest \
                else parsed.with_default_tag()
            self._untag(img, parsed, op)
            refs = self.images.refs_of(img.id)
            if not parsed.digest and not any(not r.digest and r.name == parsed.name
                                             for r in refs):
                for r in [r for r in refs if r.digest and r.name == parsed.name]:
                    self._untag(img, r, op)
                refs = self.images.refs_of(img.id)
            if refs:
                return
            removed_repo_ref = True
        elif _is_single_reference(refs):
            conflict = self._conflict(img, hard=True, soft=not force, active_ref=False)
            if conflict:
                raise conflict.error()
            for r in refs:
                self._untag(img, r, op)
        self._delete(img, op, force, prune, quiet=removed_repo_ref)

    def _conflict(self, img: Image, hard: bool, soft: bool, active_ref: bool = True
                  ) -> _DeleteConflict | None:
        using = self.containers_using(img.id)
        running = [c for c in using if self.container_is_running(c)]
        stopped = [c for c in using if c not in running]
        if hard and self.images.children(img.id):
            return _DeleteConflict(img, "image has dependent child images", hard=True)
        if hard and running:
            return _DeleteConflict(img, f"image is being used by running container "
                                        f"{running[0][:12]}", hard=True, used=True)
        if soft and active_ref and self.images.refs_of(img.id):
            return _DeleteConflict(img, "image is referenced in multiple repositories",
                                   hard=False)
        if soft and stopped:
            return _DeleteConflict(img, f"image is being used by stopped container "
                                        f"{stopped[0][:12]}", hard=False, used=True)
        return None

    def _delete(self, img: Image, op: _Removal, force: bool, prune: bool,
                quiet: bool) -> None:
        conflict = self._conflict(img, hard=True, soft=not force)
        if conflict:
            dangling = not self.images.refs_of(img.id) and not self.images.children(img.id)
            if quiet and (not dangling or conflict.used):
                return
            raise conflict.error()
        for r in self.images.refs_of(img.id):
            self._untag(img, r, op)
        if self.containers_using(img.id):
            # forced, but containers keep their image: it stays, untagged (dangling),
            # so their layers stay too; it can be removed once they are gone.
            return
        parent = img.parent
        self.images.delete(img.id)
        self.content.delete(img.id)
        op.events.append(("delete", img, img.id))
        op.records.append({"Deleted": img.id})
        used = {c for other in self.images.all().values() for c in other.layers}
        for chain in reversed(img.layers):
            if chain not in used and self.layers.get(chain) is not None:
                doomed = self.layers.remove(chain)
                if doomed:
                    op.doomed.append(doomed)
                op.records.append({"Deleted": chain})
        if prune and parent:
            parent_img = self.get(parent)
            if parent_img is not None:
                self._delete(parent_img, op, False, prune, quiet=True)

    # --- load ----------------------------------------------------------------------------
    async def load(self, chunks: AsyncIterator[bytes], quiet: bool = True
                   ) -> AsyncIterator[bytes]:
        """Import a `docker save` archive, yielding dockerd's JSON progress lines."""
        async for line in self._loader.run(chunks, quiet, self._on_loaded):
            yield line

    def register_image(self, config_bytes: bytes, refs: list[Reference] | None = None,
                       parent: str = "") -> Image:
        """Record an image whose layers are already unpacked (self.layers.unpack):
        for pull, build and commit. Adds refs (tags or name@digest); publishes no
        events (the caller does: pull, tag...). Blocking only briefly (sqlite)."""
        try:
            config = json.loads(config_bytes)
        except ValueError as e:
            raise InvalidParameter(f"invalid image config: {e}") from e
        diff_ids = validate_config(config_bytes, config, None, "config")
        plan = ArchiveImage(config_bytes, config, digest_of(config_bytes), [], diff_ids,
                            list(refs or []))
        self._loader.commit([plan], parent)
        img = self.get(plan.image_id)
        assert img is not None
        return img

    def _on_loaded(self, loaded: Loaded) -> None:
        img = self.get(loaded.image_id)
        if img is None:
            return
        for ref in loaded.refs:
            self._event("tag", img, ref.familiar())
        name = loaded.refs[0].familiar() if loaded.refs else img.id
        self._event("load", img, name)

    # --- containers (wired by daemon.py) ----------------------------------------------------
    def use_containers(self, containers: Any) -> None:
        """Answer 'which containers use this image / is that one running' from the
        container service (needed by rmi conflicts, prune and system df)."""
        self.containers_using = containers.containers_using_image

        def running(cid: str) -> bool:
            try:
                return bool(containers.get(cid).state.running)
            except DockerError:
                return False
        self.container_is_running = running

    # --- save ------------------------------------------------------------------------------
    def save(self, names: list[str]) -> AsyncIterator[bytes]:
        """`docker save`: resolve every name now (so a bad one is a 404 before any
        byte is sent), then stream the archive built in a worker thread."""
        if not names:
            raise InvalidParameter("no images specified")
        items: dict[str, SaveItem] = {}
        for name in names:
            for img, refs in self._save_targets(name):
                item = items.setdefault(img.id, SaveItem(img))
                item.refs.extend(r for r in refs if r not in item.refs)
        chosen = list(items.values())
        return from_thread(lambda out: write_archive(out, chosen, self.content, self.layers))

    def _save_targets(self, name: str) -> list[tuple[Image, list[Reference]]]:
        parsed = try_parse(name)
        if parsed is not None and not parsed.tag and not parsed.digest \
                and not HEX64_RE.match(name) and not name.startswith("sha256:"):
            by_image: dict[str, list[Reference]] = {}
            for image_id, refs in self.images.refs_by_image().items():
                tagged = [r for r in refs if r.name == parsed.name and r.tag and not r.digest]
                if tagged:
                    by_image[image_id] = tagged
            found = [(img, refs) for image_id, refs in by_image.items()
                     if (img := self.get(image_id)) is not None]
            if found:                      # a bare repository name: all its tags
                return found
        img = self.resolve(name)
        named: list[Reference] = []
        if parsed is not None and not parsed.digest:
            ref = parsed.with_default_tag()
            if self.images.ref_target(ref) == img.id:
                named.append(ref)
        return [(img, named)]

    # --- import ------------------------------------------------------------------------------
    async def import_image(self, chunks: AsyncIterator[bytes] | None, src_url: str | None,
                           repo: str, tag: str, changes: list[str], message: str,
                           platform: str | None) -> AsyncIterator[bytes]:
        """`docker import`: a (flat, possibly compressed) rootfs tar from the request
        body or an http(s) URL becomes a one-layer image. Yields JSON progress lines,
        ending with {"status": "sha256:<id>"} (or an errorDetail line)."""
        path = ""
        try:
            ref = repo_tag_reference(repo, tag or None) if repo else None
            plat = parse_platform(platform)
            config = apply_changes({}, split_changes(changes))
            if src_url and src_url != "-":
                from .fetch import download
                async for line, spooled in download(src_url, self.tmp_dir):
                    if line:
                        yield line
                    path = spooled or path
            else:
                if chunks is None:
                    raise InvalidParameter("nothing to import: no request body and no URL")
                path = await self._loader.spool(chunks, prefix="import-")
            yield json_line({"status": "Importing", "progressDetail": {}, "id": ""})
            img = await asyncio.to_thread(self._import_file, path, config, message, plat, ref)
        except DockerError as e:
            yield error_line(e.message)
            return
        except OSError as e:
            yield error_line(str(e))
            return
        finally:
            if path and os.path.lexists(path):
                os.unlink(path)
        if ref is not None:
            self._event("tag", img, ref.familiar())
        self._event("import", img, img.id)
        yield json_line({"status": img.id})

    def _import_file(self, path: str, config: dict[str, Any], message: str,
                     plat: dict[str, str], ref: Reference | None) -> Image:
        with open(path, "rb") as f:
            info, created = self.layers.unpack(f, None, "")
        try:
            cfg = import_config(info.diff_id, config, message, plat)
            return self.register_image(cfg, [ref] if ref else None)
        except BaseException:
            if created:
                self.drop_unused_layers([info.chain_id])
            raise

    def drop_unused_layers(self, chains: list[str]) -> None:
        """Remove these layers unless an image or a container uses them (failure paths)."""
        with self._lock:
            used = {c for img in self.images.all().values() for c in img.layers}
            used |= self.snapshots.layers_in_use()
            doomed = [self.layers.remove(c) for c in chains if c not in used]
        self.layers.purge([d for d in doomed if d])

    # --- commit ------------------------------------------------------------------------------
    async def commit(self, containers: Any, container_ref: str, repo: str = "", tag: str = "",
                     comment: str = "", author: str = "", pause: bool = True,
                     changes: list[str] | None = None,
                     config: dict[str, Any] | None = None) -> Image:
        """`docker commit`: the container's rw layer becomes a layer on top of its
        image; returns the new image. containers: the ContainerService (get, pause,
        unpause, lock)."""
        c = containers.get(container_ref)
        ref = repo_tag_reference(repo, tag or None) if repo else None
        parent = self.get(c.image_id)
        if parent is None:
            raise NotFound(f"No such image: {c.image_id}")
        new_config = apply_changes(merge_config(config, c.config), changes or [])
        tar_path = os.path.join(self.tmp_dir, "commit-" + os.urandom(8).hex())
        paused = False
        if pause and c.state.status == "running":
            await containers.pause(c.id)
            paused = True
        try:
            async with containers.lock(c.id):
                upper = self.snapshots.upper_dir(c.id)
                await asyncio.to_thread(self._write_diff, upper, tar_path)
        finally:
            if paused:
                try:
                    await containers.unpause(c.id)
                except DockerError as e:
                    log.warning("commit: could not unpause %s: %s", c.id[:12], e)
        try:
            img = await asyncio.to_thread(self._commit_layer, tar_path, parent, new_config,
                                          c.id, dict(c.config), author, comment, ref)
        finally:
            if os.path.lexists(tar_path):
                os.unlink(tar_path)
        if ref is not None:
            self._event("tag", img, ref.familiar())
        self._events.publish("container", "commit", c.id, {
            "comment": comment, "imageID": img.id,
            "imageRef": ref.familiar() if ref else "", "name": c.name})
        return img

    @staticmethod
    def _write_diff(upper: str, tar_path: str) -> None:
        if not os.path.isdir(upper):
            raise NotFound("the container's rw layer is missing")
        with open(tar_path, "wb") as out:
            write_diff_tar(upper, out)

    def _commit_layer(self, tar_path: str, parent: Image, config: dict[str, Any], cid: str,
                      container_config: dict[str, Any], author: str, comment: str,
                      ref: Reference | None) -> Image:
        top = parent.layers[-1] if parent.layers else ""
        with open(tar_path, "rb") as f:
            info: LayerInfo
            info, created = self.layers.unpack(f, None, top)
        try:
            cfg = commit_config(parent, config, cid, container_config, info.diff_id, author,
                                comment)
            return self.register_image(cfg, [ref] if ref else None, parent=parent.id)
        except BaseException:
            if created:
                self.drop_unused_layers([info.chain_id])
            raise

    # --- prune -------------------------------------------------------------------------------
    async def prune(self, filters: dict[str, list[str]] | None = None
                    ) -> tuple[list[dict[str, str]], int]:
        """POST /images/prune: ([{"Untagged"}|{"Deleted"}...], SpaceReclaimed)."""
        filters = filters or {}
        for key in filters:
            if key not in ("dangling", "label", "label!", "until"):
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling_only = True
        if filters.get("dangling"):
            dangling_only = flt.dangling_only(filters)
        until = None
        for value in filters.get("until", []):
            t = flt.parse_timestamp(value)
            until = t if until is None else min(until, t)
        op = _Removal()
        sizes_before = {c: i.size for c, i in self.layers.all().items()}

        def work() -> None:
            with self._lock:
                images = self.images.all()
                refs_by = self.images.refs_by_image()
                for img in sorted(images.values(), key=lambda i: i.id):
                    if img.id not in {i.id for i in self.images.all().values()}:
                        continue                       # went with an earlier one
                    refs = refs_by.get(img.id, [])
                    if self.images.children(img.id):
                        continue                       # only heads, as moby
                    if self.containers_using(img.id):
                        continue
                    if until is not None and not to_unix(img.created) < until:
                        continue
                    if filters.get("label") and not flt.label_match(img, filters["label"]):
                        continue
                    if any(flt.label_match(img, [lbl]) for lbl in filters.get("label!", [])):
                        continue
                    if refs:
                        if dangling_only and any(r.tag and not r.digest for r in refs):
                            continue
                        for r in refs:
                            try:
                                self._remove(str(r), False, True, op)
                            except (Conflict, NotFound):
                                pass
                    else:
                        try:
                            self._remove(img.id, False, True, op)
                        except (Conflict, NotFound):
                            pass

        try:
            await asyncio.to_thread(work)
        finally:
            self._finish_removal(op)
        await asyncio.to_thread(self.layers.purge, op.doomed)
        deleted = {r["Deleted"] for r in op.records if "Deleted" in r}
        reclaimed = sum(size for chain, size in sizes_before.items() if chain in deleted)
        self._events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
        return op.records, reclaimed

    # --- history / disk usage --------------------------------------------------------
    def history(self, ref: str) -> list[HistoryEntry]:
        img = self.resolve(ref)
        diff_ids = img.diff_ids
        out: list[HistoryEntry] = []
        n = 0
        for h in img.config.get("history") or []:
            size = 0
            if not h.get("empty_layer"):
                if n >= len(diff_ids):
                    raise InvalidParameter("too many non-empty layers in History section")
                info = self.layers.get(chain_ids(diff_ids[:n + 1])[-1])
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
            entry.tags = [r.familiar() for r in self.images.refs_of(cur.id)
                          if r.tag and not r.digest] or None
            cur = self.images.get(cur.parent) if cur.parent else None
        return out

    def disk_usage(self, api_version: tuple[int, int] = LATEST
                   ) -> tuple[int, list[dict[str, object]]]:
        """For GET /system/df: (LayersSize, Images in wire form with SharedSize and
        Containers). The typed data is usage()."""
        wire = disk_usage_to_wire(self.usage(), api_version)
        return wire["LayersSize"], wire["Images"]

    def usage(self) -> DiskUsage:
        images = list(self.images.all().values())
        refs_by = self.images.refs_by_image()
        layers = self.layers.all()
        users: dict[str, int] = {}
        for img in images:
            for c in img.layers:
                users[c] = users.get(c, 0) + 1
        usage = []
        for img in images:
            shared = sum(layers[c].size for c in img.layers if users[c] > 1 and c in layers)
            usage.append(ImageUsage(self.images.hydrate(img, refs_by.get(img.id, [])), shared,
                                    len(self.containers_using(img.id))))
        return DiskUsage(sum(i.size for i in layers.values()), usage)

    def image_graph_driver(self, img: Image) -> dict[str, object]:
        """GraphDriver of image inspect: {"Name", "Data": {LowerDir, UpperDir, ...}}."""
        if self.storage_driver == "vfs" or not img.layers:
            return {"Name": self.storage_driver, "Data": {}}
        top = self.layers.layer_dir(img.layers[-1])
        data = {"MergedDir": os.path.join(top, "merged"), "UpperDir": os.path.join(top, "diff"),
                "WorkDir": os.path.join(top, "work")}
        if len(img.layers) > 1:
            data = {"LowerDir": ":".join(self.layers.diff_dir(c)
                                         for c in reversed(img.layers[:-1])), **data}
        return {"Name": self.storage_driver, "Data": data}

    def ancestors(self, image_id: str) -> list[str]:
        """image_id and its parents (nearest first)."""
        out: list[str] = []
        cur: str = image_id
        while cur and cur not in out:
            out.append(cur)
            img = self.images.get(cur)
            cur = img.parent if img else ""
        return out

    def matches_container_image(self, ref: str, container: Any) -> bool:
        """The containers `ancestor` filter: the container's image is ref or descends
        from it. container needs an image_id attribute."""
        img = self._lookup(ref)
        if img is None:
            return False
        return img.id in self.ancestors(str(getattr(container, "image_id", "") or ""))

    def graph_driver(self, container_id: str, image_id: str) -> dict[str, object]:
        """GraphDriver of container inspect: {"Name", "Data"}."""
        img = self.images.get(image_id)
        data = self.snapshots.graph_driver_data(container_id, img) if img else {}
        return {"Name": self.storage_driver, "Data": data}

    def container_size(self, container_id: str, image_id: str) -> tuple[int, int]:
        """(SizeRw, SizeRootFs) of a container. Blocking (walks the rw layer)."""
        img = self.images.get(image_id)
        try:
            rw = self.snapshots.rw_size(container_id)
        except OSError:
            rw = 0
        return rw, rw + (img.size if img else 0)

    # --- snapshots (blocking: use asyncio.to_thread) --------------------------------------
    def create_rw_layer(self, container_id: str, image: Image) -> None:
        self.snapshots.create_rw_layer(container_id, image)

    def mount_rootfs(self, container_id: str, image: Image | None = None) -> str:
        return self.snapshots.mount_rootfs(container_id, image)

    def unmount_rootfs(self, container_id: str) -> None:
        self.snapshots.unmount_rootfs(container_id)

    def remove_rw_layer(self, container_id: str) -> None:
        self.snapshots.remove_rw_layer(container_id)

    def changes(self, container_id: str) -> list[dict[str, object]]:
        return self.snapshots.changes(container_id)

    def rw_size(self, container_id: str) -> int:
        return self.snapshots.rw_size(container_id)

    def graph_driver_data(self, container_id: str, image: Image) -> dict[str, str]:
        return self.snapshots.graph_driver_data(container_id, image)
