"""Careful extraction of untrusted layer tars into an overlay lowerdir.

Rules (DESIGN.md §5, never bent):
- no entry lands outside the root: `..` components are rejected, absolute
  names are made relative, hardlink targets must be inside the layer;
- symlinks are never followed: every parent directory is checked with lstat
  (a symlink or file in the way of a later entry is an error), and files are
  created with O_NOFOLLOW|O_EXCL;
- numeric uid/gid only (no name lookups), modes, mtimes, devices and xattrs
  are kept; `trusted.overlay.*` xattrs from the tar are dropped (a layer must
  not smuggle overlay metadata in);
- AUFS whiteouts become overlay whiteouts: `.wh.<name>` -> a 0/0 character
  device `<name>`, `.wh..wh..opq` -> xattr trusted.overlay.opaque=y on the dir.

Blocking: call from a worker thread.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from ..errors import InvalidParameter
from ..util.gzipfast import GunzipReader
from ..util.idmap import IDENTITY, IdMap
from .hashreader import HashingReader
from .tarsplit import Recorder, TarSplit
from .tarsplit import verify as verify_split
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import bz2
    import lzma
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    bz2 = lazy_import("bz2")
    lzma = lazy_import("lzma")
    tarfile = lazy_import("tarfile")

log = logging.getLogger("pydockerd.images")

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# the tar is read in 64 KiB steps and file bodies copied in the same: fewer calls
# than tarfile's 10 KiB, and no 1 MiB joins (CPU and malloc arenas both lower)
_COPY_CHUNK = 64 << 10
_TAR_BUFSIZE = 64 << 10


def decompressed(f: IO[bytes]) -> IO[bytes]:
    """Detect compression by magic bytes; return a stream of the plain tar."""
    head = f.read(6)
    f.seek(-len(head), os.SEEK_CUR)
    if head[:2] == b"\x1f\x8b":
        return GunzipReader(f)  # type: ignore[return-value]
    if head[:3] == b"BZh":
        return bz2.BZ2File(f, "rb")
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(f, "rb")
    if head[:4] == b"\x28\xb5\x2f\xfd":
        raise InvalidParameter("zstd-compressed layers are not supported")
    return f


def clean_name(name: str) -> str:
    """The entry name made relative and checked: '' for the root itself."""
    parts = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            raise InvalidParameter(f"invalid tar entry {name!r}: path escapes the layer root")
        parts.append(p)
    return "/".join(parts)


@dataclass
class UnpackResult:
    diff_id: str    # sha256:<hex> of the uncompressed tar
    size: int       # bytes of regular-file content
    split: TarSplit | None = None   # with record=True: how to rebuild the tar (save)


class Extractor:
    """Extraction into root; subclasses may override whiteout() (docker cp does).

    `ids`: the daemon's userns remapping; the tar's ids are the container's and
    become host ids here (directories the tar does not name: the remapped root).
    """

    def __init__(self, root: str, ids: IdMap = IDENTITY) -> None:
        self.root = root
        self.ids = ids
        self._dirs_ok: set[str] = {""}   # relative dirs verified to be real directories
        self._dir_times: list[tuple[str, int]] = []

    # --- path helpers (no symlink is ever followed) -------------------------
    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def ensure_dir(self, rel: str) -> None:
        """Make sure every component of rel is a real directory, creating missing ones."""
        if rel in self._dirs_ok:
            return
        parent = os.path.dirname(rel)
        self.ensure_dir(parent)
        path = self._abs(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            if self.ids.remapped:
                os.lchown(path, *self.ids.root())
        else:
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidParameter(
                    f"invalid tar entry: {rel!r} is not a directory but has entries below it")
        self._dirs_ok.add(rel)

    def _clear(self, rel: str, keep_dir: bool) -> None:
        """Remove whatever is at rel (unless it is a dir and keep_dir)."""
        path = self._abs(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(path)
        else:
            os.unlink(path)
        prefix = rel + "/"
        self._dirs_ok = {d for d in self._dirs_ok if d != rel and not d.startswith(prefix)}

    # --- entries ---------------------------------------------------------------
    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> int:
        rel = clean_name(m.name)
        if not rel:
            return 0                       # the root entry ("./"): nothing to create
        parent, base = os.path.split(rel)
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(m, parent, base)
            return 0
        self.ensure_dir(parent)
        path = self._abs(rel)
        size = 0
        if m.isdir():
            self._clear(rel, keep_dir=True)
            if not os.path.lexists(path):
                os.mkdir(path, 0o755)
            self._dirs_ok.add(rel)
        elif m.islnk():
            self.hardlink(m, rel)
            return 0                       # metadata is shared with the target
        else:
            self._clear(rel, keep_dir=False)
            if m.issym():
                os.symlink(m.linkname, path)
            elif m.isreg():
                size = self.regular(tar, m, path)
            elif m.ischr() or m.isblk():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            elif m.isfifo():
                os.mkfifo(path, 0o600)
            else:
                log.debug("skipping tar entry %r of type %r", m.name, m.type)
                return 0
        self.metadata(m, path)
        return size

    def regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> int:
        src = tar.extractfile(m)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "wb") as out:
            if src is not None:
                shutil.copyfileobj(src, out, _COPY_CHUNK)
        return m.size

    def hardlink(self, m: tarfile.TarInfo, rel: str) -> None:
        target = clean_name(m.linkname)
        if not target:
            raise InvalidParameter(f"invalid hardlink {m.name!r}: target is the layer root")
        self.ensure_dir(os.path.dirname(target))   # target's parents: real dirs in the layer
        tpath = self._abs(target)
        try:
            st = os.lstat(tpath)
        except FileNotFoundError:
            raise InvalidParameter(
                f"invalid hardlink {m.name!r}: target {m.linkname!r} is not in the layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidParameter(f"invalid hardlink {m.name!r}: target is a directory")
        if target == rel:
            return
        self._clear(rel, keep_dir=False)
        os.link(tpath, self._abs(rel), follow_symlinks=False)

    def whiteout(self, m: tarfile.TarInfo, parent: str, base: str) -> None:
        """The AUFS entry `base` (a `.wh.` name) in parent: the opaque marker goes to
        opaque(), `.wh.<name>` removes <name> and calls whited_out(), other AUFS
        metadata is dropped."""
        self.ensure_dir(parent)
        if base == WHITEOUT_OPAQUE:
            self.opaque(parent)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return                          # other AUFS metadata (.wh..wh.plnk ...): drop
        name = base[len(WHITEOUT_PREFIX):]
        if not name or name in (".", ".."):
            raise InvalidParameter(f"invalid whiteout entry {m.name!r}")
        rel = os.path.join(parent, name) if parent else name
        self._clear(rel, keep_dir=False)
        self.whited_out(m, rel)

    def opaque(self, parent: str) -> None:
        """Overlay: the opaque xattr on the directory."""
        os.setxattr(self._abs(parent), OPAQUE_XATTR, b"y", follow_symlinks=False)

    def whited_out(self, m: tarfile.TarInfo, rel: str) -> None:
        """Overlay: a 0/0 character device where the whited-out name was."""
        path = self._abs(rel)
        os.mknod(path, stat.S_IFCHR | 0o600, 0)
        os.lchown(path, *self.ids.to_host(m.uid, m.gid))

    def metadata(self, m: tarfile.TarInfo, path: str) -> None:
        os.lchown(path, *self.ids.to_host(m.uid, m.gid))
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                self.xattr(path, key[len("SCHILY.xattr."):], value)
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)   # after chown, which clears setuid bits
        mtime_ns = int(m.mtime * 1_000_000_000)
        if m.isdir():
            self._dir_times.append((path, mtime_ns))
        else:
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    @staticmethod
    def xattr(path: str, name: str, value: str) -> None:
        if name.startswith("trusted.overlay."):
            return
        try:
            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                raise
            log.debug("xattr %s on %s not kept: %s", name, path, e)

    def finish(self) -> None:
        for path, mtime_ns in reversed(self._dir_times):
            try:
                os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
            except FileNotFoundError:       # replaced by a later entry of the layer
                pass

    def extract(self, src: IO[bytes], what: str) -> None:
        """Every entry of the tar read from src (plain, gzip, bzip2 or xz), then
        finish(); a malformed tar is InvalidParameter("<what>: <error>")."""
        with bad_tar_is_invalid(what), \
                tarfile.open(fileobj=decompressed(src), mode="r|") as tar:
            for m in tar:
                self.entry(tar, m)
        self.finish()


@contextmanager
def bad_tar_is_invalid(what: str) -> Iterator[None]:
    """A malformed or badly compressed tar read in the block is
    InvalidParameter("<what>: <error>"); a real I/O error (one with an errno) passes."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise InvalidParameter(f"{what}: {e}") from e
    except OSError as e:
        if e.errno is not None:            # a real filesystem error (ENOSPC, EIO...)
            raise
        raise InvalidParameter(f"{what}: {e}") from e   # bad gzip/bz2 data


def unpack_layer(src: IO[bytes], root: str, record: bool = False,
                 ids: IdMap = IDENTITY) -> UnpackResult:
    """Extract the layer tar read from src (plain, gzip, bzip2 or xz) into root.

    root must exist and be empty. Returns the diff id of the uncompressed
    stream (and, with record=True, its tar-split). On error the caller
    removes root. With a remapping (`ids`), files get the host ids of the
    container's ids (the tar-split keeps the tar's own headers).
    """
    plain = decompressed(src)
    recorder = Recorder(plain) if record else None
    stream = HashingReader(recorder or plain)   # type: ignore[arg-type]
    ex = Extractor(root, ids)
    size = 0
    bodies: list[str] = []
    try:
        with bad_tar_is_invalid("invalid layer tar"):
            with tarfile.open(fileobj=stream, mode="r|",  # type: ignore[call-overload]
                              bufsize=_TAR_BUFSIZE) as tar:
                for m in tar:
                    if m.isreg() and m.size > 0:
                        bodies.append(clean_name(m.name))
                    size += ex.entry(tar, m)
            stream.drain(_COPY_CHUNK)                 # trailing blocks count in the diff id
        ex.finish()
        diff_id = "sha256:" + stream.hexdigest()
    finally:
        stream.close()
    split = recorder.result(bodies) if recorder is not None else None
    if split is not None and not verify_split(split, root):
        split = None
    return UnpackResult(diff_id, size, split)
