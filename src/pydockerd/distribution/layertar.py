"""The uncompressed tar of a stored layer, for push.

The layer store keeps layers unpacked (overlay form), not their original tar.
Sources, best first:
1. the original tar as the image service rebuilds it from its tar-split
   (`images.layers.replay`): the one way to reproduce any layer's diff id;
2. a tar re-made from the diff dir (sorted, numeric owners, overlay whiteouts
   turned back into .wh. entries). It is used only when its digest equals the
   layer's diff id; otherwise the push stops with a clear error.
Blocking: call from threads.
"""
from __future__ import annotations

import os
import stat
from typing import Any, Iterator, TYPE_CHECKING

from ..images.service import ImageService
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")

OPAQUE_XATTR = "trusted.overlay.opaque"


def _info(path: str, name: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    return ti


def write_layer_tar(diff_dir: str, out: Any) -> None:
    """A deterministic tar of an overlay diff dir, whiteouts in AUFS form."""
    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(diff_dir):
            dirs.sort()
            rel_root = os.path.relpath(root, diff_dir)
            names = sorted(dirs + files)
            if rel_root != ".":
                try:
                    if os.getxattr(root, OPAQUE_XATTR, follow_symlinks=False) == b"y":
                        ti = tarfile.TarInfo(os.path.join(rel_root, ".wh..wh..opq"))
                        ti.mtime = int(os.lstat(root).st_mtime)
                        tar.addfile(ti)
                except OSError:
                    pass
            for n in names:
                path = os.path.join(root, n)
                rel = os.path.normpath(os.path.join(rel_root, n))
                st = os.lstat(path)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    ti = tarfile.TarInfo(os.path.join(os.path.dirname(rel), ".wh." + n))
                    ti.mtime = int(st.st_mtime)
                    tar.addfile(ti)
                    continue
                ti = _info(path, rel, st)
                key = (st.st_dev, st.st_ino)
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in seen:
                    ti.type, ti.linkname = tarfile.LNKTYPE, seen[key]
                    tar.addfile(ti)
                elif stat.S_ISREG(st.st_mode):
                    seen[key] = rel
                    ti.size = st.st_size
                    with open(path, "rb") as f:
                        tar.addfile(ti, f)
                elif stat.S_ISDIR(st.st_mode):
                    ti.type = tarfile.DIRTYPE
                    tar.addfile(ti)
                elif stat.S_ISLNK(st.st_mode):
                    ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
                    tar.addfile(ti)
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                    ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                    tar.addfile(ti)
                elif stat.S_ISFIFO(st.st_mode):
                    ti.type = tarfile.FIFOTYPE
                    tar.addfile(ti)


def original_tar_chunks(images: ImageService, chain_id: str) -> Iterator[bytes]:
    """The layer's original tar, rebuilt by the image service from its tar-split."""
    return images.layers.replay(chain_id).chunks()  # type: ignore[no-any-return]
