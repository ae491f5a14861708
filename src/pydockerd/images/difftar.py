"""A container's rw layer (overlay upper dir) as a layer tar, for docker commit.

Overlay whiteouts go back to the AUFS form every image tool reads: a 0/0
character device `<name>` becomes an empty `.wh.<name>` file, an opaque
directory (trusted.overlay.opaque=y) gets a `.wh..wh..opq` entry. Names are
sorted, owners numeric (no name lookups), overlay's own xattrs dropped; hard
links inside the layer stay hard links. With --userns-remap the files' host ids
go back to the container's ids (`ids`), so the image holds unmapped owners.
Blocking: run in a worker thread.
"""
from __future__ import annotations

import os
import stat
from typing import IO, TYPE_CHECKING

from ..util.idmap import IDENTITY, IdMap
from .tarsafe import OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")


def _xattrs(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def _info(name: str, st: os.stat_result, ids: IdMap) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = ids.to_container(st.st_uid, st.st_gid)
    ti.uname = ti.gname = ""
    ti.mtime = st.st_mtime
    return ti


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_diff_tar(upper: str, out: IO[bytes], ids: IdMap = IDENTITY) -> None:
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def walk(rel: str) -> None:
            base = os.path.join(upper, rel) if rel else upper
            for name in sorted(os.listdir(base)):
                child = f"{rel}/{name}" if rel else name
                path = os.path.join(upper, child)
                st = os.lstat(path)
                mode = st.st_mode
                if stat.S_ISCHR(mode) and st.st_rdev == 0:        # overlay whiteout
                    wh = _info(f"{rel}/{WHITEOUT_PREFIX}{name}" if rel
                               else WHITEOUT_PREFIX + name, st, ids)
                    wh.mode, wh.uid, wh.gid = 0o600, 0, 0
                    tar.addfile(wh)
                    continue
                ti = _info(child, st, ids)
                ti.pax_headers = _xattrs(path)
                if stat.S_ISDIR(mode):
                    ti.type = tarfile.DIRTYPE
                    tar.addfile(ti)
                    if _is_opaque(path):
                        tar.addfile(_info(f"{child}/{WHITEOUT_OPAQUE}", st, ids))
                    walk(child)
                elif stat.S_ISREG(mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in links:
                        ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
                        tar.addfile(ti)
                        continue
                    links[key] = child
                    ti.size = st.st_size
                    with open(path, "rb") as f:
                        tar.addfile(ti, f)
                elif stat.S_ISLNK(mode):
                    ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
                    tar.addfile(ti)
                elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                    ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                    tar.addfile(ti)
                elif stat.S_ISFIFO(mode):
                    ti.type = tarfile.FIFOTYPE
                    tar.addfile(ti)
                # sockets are not archived (as Docker)
        walk("")
