"""What distribution remembers about layers (moby's v2 metadata service), and the
compressed blobs it pulled or pushed:

    <data-root>/distribution/v2meta.json   diff id -> [{digest, mediaType, size,
                                           registry, repo}]  (where a layer's blob is)
    <data-root>/distribution/blobs/<hex>   the compressed blob as pulled/pushed, so a
                                           push re-sends exactly those bytes (same digest)
    <data-root>/distribution/tmp/          downloads and uploads in progress

The layer store keeps only unpacked layers, and without the blob a push would
have to re-create the tar and could not always reproduce the diff id. Entries
whose layer is gone are dropped by gc(). Blocking: call from threads.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import asdict, dataclass

from ..util.fsatomic import write_atomic


@dataclass(frozen=True)
class BlobRecord:
    digest: str
    media_type: str
    size: int
    registry: str
    repo: str                        # path inside the registry: x/busybox


class BlobCache:
    def __init__(self, data_root: str) -> None:
        self.root = os.path.join(data_root, "distribution")
        self.blobs = os.path.join(self.root, "blobs")
        self.tmp = os.path.join(self.root, "tmp")
        self._meta_path = os.path.join(self.root, "v2meta.json")
        self._lock = threading.Lock()
        self._ready = False

    def setup(self) -> None:
        """Create dirs; the first call also removes temp files a crash left behind."""
        with self._lock:
            if self._ready:
                return
            os.makedirs(self.blobs, exist_ok=True)
            shutil.rmtree(self.tmp, ignore_errors=True)
            os.makedirs(self.tmp, exist_ok=True)
            self._ready = True

    def _load(self) -> dict[str, list[dict[str, object]]]:
        try:
            with open(self._meta_path) as f:
                doc = json.load(f)
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def records(self, diff_id: str) -> list[BlobRecord]:
        with self._lock:
            out = []
            for r in self._load().get(diff_id, []):
                try:
                    out.append(BlobRecord(str(r["digest"]), str(r["media_type"]),
                                          int(str(r["size"])), str(r["registry"]),
                                          str(r["repo"])))
                except (KeyError, ValueError):
                    continue
            return out

    def add(self, diff_id: str, rec: BlobRecord) -> None:
        with self._lock:
            doc = self._load()
            items = [r for r in doc.get(diff_id, [])
                     if (r.get("registry"), r.get("repo"), r.get("digest")) !=
                     (rec.registry, rec.repo, rec.digest)]
            items.insert(0, asdict(rec))
            doc[diff_id] = items[:20]
            write_atomic(self._meta_path, json.dumps(doc))

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, digest.split(":", 1)[-1])

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def keep_blob(self, tmp_path: str, digest: str) -> None:
        """Move a verified downloaded/compressed blob into the cache (or drop it)."""
        final = self.blob_path(digest)
        if os.path.exists(final):
            os.unlink(tmp_path)
        else:
            os.replace(tmp_path, final)

    def local_blob(self, diff_id: str) -> BlobRecord | None:
        return next((r for r in self.records(diff_id) if self.has_blob(r.digest)), None)

    def temp_path(self, prefix: str) -> str:
        return os.path.join(self.tmp, f"{prefix}-{os.urandom(8).hex()}")

    def gc(self, live_diff_ids: set[str]) -> None:
        """Forget layers no longer in the layer store, and delete their blobs."""
        with self._lock:
            doc = self._load()
            dead = [d for d in doc if d not in live_diff_ids]
            keep_digests = {str(r.get("digest")) for d, rs in doc.items()
                            if d in live_diff_ids for r in rs}
            for d in dead:
                del doc[d]
            if dead:
                write_atomic(self._meta_path, json.dumps(doc))
            if os.path.isdir(self.blobs):
                for name in os.listdir(self.blobs):
                    if "sha256:" + name not in keep_digests:
                        try:
                            os.unlink(os.path.join(self.blobs, name))
                        except FileNotFoundError:
                            pass
