"""Image records and references (tags, digests) in the sqlite Store.

    kind "image": id = sha256:<hex>      -> Image.to_doc()
    kind "tag":   id = full reference    -> {"image", "name", "tag", "digest"}
                  (docker.io/library/busybox:latest, host:5000/a/b@sha256:...)
"""
from __future__ import annotations

from ..store import Store
from .model import Image
from .references import Reference

IMAGE = "image"
TAG = "tag"


class ImageStore:
    def __init__(self, store: Store) -> None:
        self.db = store

    # --- images ------------------------------------------------------------------
    def get(self, image_id: str) -> Image | None:
        doc = self.db.get(IMAGE, image_id)
        return Image.from_doc(doc) if doc else None

    def all(self) -> dict[str, Image]:
        return {k: Image.from_doc(v) for k, v in self.db.all(IMAGE).items()}

    def put(self, img: Image) -> None:
        self.db.put(IMAGE, img.id, img.to_doc())

    def delete(self, image_id: str) -> None:
        self.db.delete(IMAGE, image_id)

    # --- references ----------------------------------------------------------------
    def ref_target(self, ref: Reference) -> str | None:
        doc = self.db.get(TAG, str(ref))
        return doc["image"] if doc else None

    def put_ref(self, ref: Reference, image_id: str) -> None:
        self.db.put(TAG, str(ref), {"image": image_id, "name": ref.name, "tag": ref.tag,
                                    "digest": ref.digest})

    def delete_ref(self, ref: Reference) -> None:
        self.db.delete(TAG, str(ref))

    def refs_by_image(self) -> dict[str, list[Reference]]:
        out: dict[str, list[Reference]] = {}
        for doc in self.db.all(TAG).values():
            out.setdefault(doc["image"], []).append(
                Reference(doc["name"], doc.get("tag", ""), doc.get("digest", "")))
        for refs in out.values():
            refs.sort(key=lambda r: r.familiar())
        return out

    def refs_of(self, image_id: str) -> list[Reference]:
        return self.refs_by_image().get(image_id, [])

    def hydrate(self, img: Image, refs: list[Reference]) -> Image:
        """Fill repo_tags / repo_digests (familiar forms) from refs."""
        img.repo_tags = [r.familiar() for r in refs if not r.digest]
        img.repo_digests = [r.familiar() for r in refs if r.digest]
        return img

    def children(self, image_id: str, images: dict[str, Image] | None = None) -> list[str]:
        images = self.all() if images is None else images
        return [i.id for i in images.values() if i.parent == image_id]
