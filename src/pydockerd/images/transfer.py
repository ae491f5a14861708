"""`docker load` and `docker save`: the service's side of images/loader.py and
images/save.py (name resolution before any byte is sent, events after a load)."""
from __future__ import annotations

from functools import partial
from typing import AsyncIterator

from ..errors import InvalidParameter
from ..progress import ProgressEvent
from ..util.threadstream import from_thread
from .loader import Loaded
from .model import Image
from .references import HEX64_RE, Reference, try_parse
from .save import SaveItem, write_archive
from .state import ImageState


async def load(st: ImageState, chunks: AsyncIterator[bytes], quiet: bool = True
               ) -> AsyncIterator[ProgressEvent]:
    """Import a `docker save` archive, yielding its progress events."""
    async for ev in st.loader.run(chunks, quiet, partial(_on_loaded, st)):
        yield ev


def _on_loaded(st: ImageState, loaded: Loaded) -> None:
    img = st.get(loaded.image_id)
    if img is None:
        return
    for ref in loaded.refs:
        st.event("tag", img, ref.familiar())
    name = loaded.refs[0].familiar() if loaded.refs else img.id
    st.event("load", img, name)


# --- save ------------------------------------------------------------------------------
def save(st: ImageState, names: list[str]) -> AsyncIterator[bytes]:
    """`docker save`: resolve every name now (so a bad one is a 404 before any
    byte is sent), then stream the archive built in a worker thread."""
    if not names:
        raise InvalidParameter("no images specified")
    items: dict[str, SaveItem] = {}
    for name in names:
        for img, refs in _save_targets(st, name):
            item = items.setdefault(img.id, SaveItem(img))
            item.refs.extend(r for r in refs if r not in item.refs)
    chosen = list(items.values())
    return from_thread(lambda out: write_archive(out, chosen, st.content, st.layers))


def _save_targets(st: ImageState, name: str) -> list[tuple[Image, list[Reference]]]:
    parsed = try_parse(name)
    if parsed is not None and not parsed.tag and not parsed.digest \
            and not HEX64_RE.match(name) and not name.startswith("sha256:"):
        by_image: dict[str, list[Reference]] = {}
        for image_id, refs in st.images.refs_by_image().items():
            tagged = [r for r in refs if r.name == parsed.name and r.tag and not r.digest]
            if tagged:
                by_image[image_id] = tagged
        found = [(img, refs) for image_id, refs in by_image.items()
                 if (img := st.get(image_id)) is not None]
        if found:                      # a bare repository name: all its tags
            return found
    img = st.resolve(name)
    named: list[Reference] = []
    if parsed is not None and not parsed.digest:
        ref = parsed.with_default_tag()
        if st.images.ref_target(ref) == img.id:
            named.append(ref)
    return [(img, named)]
