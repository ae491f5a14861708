"""Content store: digest-addressed blobs under data_root/content/blobs/sha256/.

Image configs (and manifests) are kept byte for byte as loaded, so the image
id (the config digest) can always be re-verified and saved again.
"""
from __future__ import annotations

import os

from ..errors import NotFound
from ..util.fsatomic import write_atomic
from typing import TYPE_CHECKING
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
else:   # OpenSSL's digests: loaded by the first one (issue 10: idle memory)
    hashlib = lazy_import("hashlib")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ContentStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self._dir = os.path.join(root, "blobs", "sha256")

    def setup(self) -> None:
        os.makedirs(self._dir, exist_ok=True)

    def path(self, digest: str) -> str:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef"
                                                              for c in hexpart):
            raise NotFound(f"invalid digest {digest!r}")
        return os.path.join(self._dir, hexpart)

    def put(self, data: bytes) -> str:
        digest = digest_of(data)
        p = self.path(digest)
        if not os.path.exists(p):
            write_atomic(p, data, 0o644)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass
