"""`docker rmi` and `docker image prune`: untag, delete, and the conflicts that stop them
(moby's daemon/images/image_delete.go), then purge the layers no image uses."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..errors import Conflict, InvalidParameter, NotFound
from ..util.ids import to_unix
from . import filters as flt
from .model import DeleteRecord, Image
from .references import Reference, parse_normalized
from .state import ImageState


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

    records: list[DeleteRecord] = field(default_factory=list)
    events: list[tuple[str, Image, str]] = field(default_factory=list)
    doomed: list[str] = field(default_factory=list)


def remove(st: ImageState, ref: str, force: bool = False, noprune: bool = False
           ) -> list[DeleteRecord]:
    """Untag/delete like `docker rmi`; DeleteRecords (untagged, then deleted).

    Blocking when layers are deleted: from async code prefer remove_async.
    """
    op = _Removal()
    with st.lock:
        _remove(st, ref, force, not noprune, op)
    _finish_removal(st, op)
    st.layers.purge(op.doomed)
    return op.records


async def remove_async(st: ImageState, ref: str, force: bool = False, noprune: bool = False
                       ) -> list[DeleteRecord]:
    """remove() with the disk work in a thread; events published on the loop."""
    op = _Removal()

    def work() -> None:
        with st.lock:
            _remove(st, ref, force, not noprune, op)

    try:
        await asyncio.to_thread(work)
    finally:
        _finish_removal(st, op)
    await asyncio.to_thread(st.layers.purge, op.doomed)
    return op.records


def _finish_removal(st: ImageState, op: _Removal) -> None:
    for action, img, name in op.events:
        st.event(action, img, name)


def _untag(st: ImageState, img: Image, ref: Reference, op: _Removal) -> None:
    st.images.delete_ref(ref)
    op.records.append(DeleteRecord(untagged=ref.familiar()))
    op.events.append(("untag", img, img.id))


def _remove(st: ImageState, ref: str, force: bool, prune: bool, op: _Removal) -> None:
    img = st.resolve(ref)
    refs = st.images.refs_of(img.id)
    removed_repo_ref = False
    if not _is_id_prefix(img.id, ref):
        if not force and _is_single_reference(refs):
            using = st.containers.using_image(img.id)
            if using:
                raise Conflict(
                    f"conflict: unable to remove repository reference \"{ref}\" (must force)"
                    f" - container {using[0][:12]} is using its referenced image "
                    f"{img.short_id}")
        parsed = parse_normalized(ref)
        parsed = Reference(parsed.name, "", parsed.digest) if parsed.digest \
            else parsed.with_default_tag()
        _untag(st, img, parsed, op)
        refs = st.images.refs_of(img.id)
        if not parsed.digest and not any(not r.digest and r.name == parsed.name
                                         for r in refs):
            for r in [r for r in refs if r.digest and r.name == parsed.name]:
                _untag(st, img, r, op)
            refs = st.images.refs_of(img.id)
        if refs:
            return
        removed_repo_ref = True
    elif _is_single_reference(refs):
        conflict = _conflict(st, img, hard=True, soft=not force, active_ref=False)
        if conflict:
            raise conflict.error()
        for r in refs:
            _untag(st, img, r, op)
    _delete(st, img, op, force, prune, quiet=removed_repo_ref)


def _conflict(st: ImageState, img: Image, hard: bool, soft: bool, active_ref: bool = True
              ) -> _DeleteConflict | None:
    using = st.containers.using_image(img.id)
    running = [c for c in using if st.containers.is_running(c)]
    stopped = [c for c in using if c not in running]
    if hard and st.images.children(img.id):
        return _DeleteConflict(img, "image has dependent child images", hard=True)
    if hard and running:
        return _DeleteConflict(img, f"image is being used by running container "
                                    f"{running[0][:12]}", hard=True, used=True)
    if soft and active_ref and st.images.refs_of(img.id):
        return _DeleteConflict(img, "image is referenced in multiple repositories",
                               hard=False)
    if soft and stopped:
        return _DeleteConflict(img, f"image is being used by stopped container "
                                    f"{stopped[0][:12]}", hard=False, used=True)
    return None


def _delete(st: ImageState, img: Image, op: _Removal, force: bool, prune: bool,
            quiet: bool) -> None:
    conflict = _conflict(st, img, hard=True, soft=not force)
    if conflict:
        dangling = not st.images.refs_of(img.id) and not st.images.children(img.id)
        if quiet and (not dangling or conflict.used):
            return
        raise conflict.error()
    for r in st.images.refs_of(img.id):
        _untag(st, img, r, op)
    if st.containers.using_image(img.id):
        # forced, but containers keep their image: it stays, untagged (dangling),
        # so their layers stay too; it can be removed once they are gone.
        return
    parent = img.parent
    st.images.delete(img.id)
    st.content.delete(img.id)
    op.events.append(("delete", img, img.id))
    op.records.append(DeleteRecord(deleted=img.id))
    used = {c for other in st.images.all().values() for c in other.layers}
    for chain in reversed(img.layers):
        if chain not in used and st.layers.get(chain) is not None:
            doomed = st.layers.remove(chain)
            if doomed:
                op.doomed.append(doomed)
            op.records.append(DeleteRecord(deleted=chain))
    if prune and parent:
        parent_img = st.get(parent)
        if parent_img is not None:
            _delete(st, parent_img, op, False, prune, quiet=True)


# --- prune -------------------------------------------------------------------------------
async def prune(st: ImageState, filters: dict[str, list[str]] | None = None
                ) -> tuple[list[DeleteRecord], int]:
    """POST /images/prune: (DeleteRecords, bytes reclaimed)."""
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
    sizes_before = {c: i.size for c, i in st.layers.all().items()}

    def work() -> None:
        with st.lock:
            images = st.images.all()
            refs_by = st.images.refs_by_image()
            for img in sorted(images.values(), key=lambda i: i.id):
                if img.id not in {i.id for i in st.images.all().values()}:
                    continue                       # went with an earlier one
                refs = refs_by.get(img.id, [])
                if st.images.children(img.id):
                    continue                       # only heads, as moby
                if st.containers.using_image(img.id):
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
                            _remove(st, str(r), False, True, op)
                        except (Conflict, NotFound):
                            pass
                else:
                    try:
                        _remove(st, img.id, False, True, op)
                    except (Conflict, NotFound):
                        pass

    try:
        await asyncio.to_thread(work)
    finally:
        _finish_removal(st, op)
    await asyncio.to_thread(st.layers.purge, op.doomed)
    deleted = {r.deleted for r in op.records if r.deleted}
    reclaimed = sum(size for chain, size in sizes_before.items() if chain in deleted)
    st.events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
    return op.records, reclaimed
