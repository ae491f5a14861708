"""Applying layer tars one over another into one plain directory (moby's
archive.UnpackLayer / chrootarchive.ApplyLayer), for rootfs that are not overlay
mounts: a managed plugin's rootfs is its layers applied in order.

The extraction rules are tarsafe.Extractor's (nothing outside the root, no symlink
followed, numeric ids, modes, mtimes, xattrs); whiteouts are applied rather than
kept: `.wh.<name>` removes `<name>` of the earlier layers, and `.wh..wh..opq` empties
its directory of everything the earlier layers put there (what this layer puts there
stays, wherever the marker comes in the tar), as dockerd does.

Blocking: call from a worker thread.
"""
from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING

from ..util.lazy import lazy_import
from .tarsafe import WHITEOUT_PREFIX, Extractor, clean_name

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")


class _ApplyExtractor(Extractor):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.unpacked: set[str] = set()      # what this layer put there (opaque keeps it)

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> int:
        rel = clean_name(m.name)
        if rel and not os.path.basename(rel).startswith(WHITEOUT_PREFIX):
            self.unpacked.add(rel)
        return super().entry(tar, m)

    def _kept(self, rel: str) -> bool:
        return rel in self.unpacked or any(u.startswith(rel + "/") for u in self.unpacked)

    def opaque(self, parent: str) -> None:
        """Only what this layer unpacked stays below parent (moby's walk of the
        directory: whatever is not in unpackedPaths goes)."""
        for name in os.listdir(self._abs(parent)):
            rel = os.path.join(parent, name) if parent else name
            if not self._kept(rel):
                self._clear(rel, keep_dir=False)
            elif os.path.isdir(self._abs(rel)) and not os.path.islink(self._abs(rel)):
                self.opaque(rel)

    def whited_out(self, m: tarfile.TarInfo, rel: str) -> None:
        """The name is gone (removed by whiteout()): nothing marks it."""


def apply_layer(src: IO[bytes], root: str) -> None:
    """Apply the layer tar read from src (plain, gzip, bzip2 or xz) over root (an
    existing directory, empty for the first layer)."""
    _ApplyExtractor(root).extract(src, "invalid layer tar")
