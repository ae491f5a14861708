"""`docker cp` and `docker export`: tar streams out of and into a container's rootfs.

Paths are resolved as the container would see them: symlinks are chased
inside the rootfs, never onto the host. Uploads go through the same careful
extractor as image layers (no entry escapes its root, no symlink followed).
With --userns-remap, owners are mapped both ways: a tar out of the container
has the container's ids, a tar into it gets the host ids of its owners.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import posixpath
import stat
from dataclasses import dataclass
from typing import Any, AsyncIterator, TYPE_CHECKING

from ..errors import InvalidParameter, NotFound
from ..images.tarsafe import Extractor
from ..runtime.users import resolve_in_root
from ..util.threadstream import from_thread
from ..util.ids import format_time
from ..util.idmap import IDENTITY, IdMap
from .model import Container
from .deps import Images, Volumes
from .fsview import FSView, ViewMount
from .mounts import mount_volumes, unmount_volumes
from .spec import container_mounts
from .registry import ContainerRegistry
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")

# Go's os.FileMode bits, which the docker CLI decodes from the path-stat header
_GO_DIR, _GO_SYMLINK, _GO_DEVICE = 1 << 31, 1 << 27, 1 << 26
_GO_PIPE, _GO_SOCKET, _GO_SETUID, _GO_SETGID = 1 << 25, 1 << 24, 1 << 23, 1 << 22
_GO_CHARDEV, _GO_STICKY = 1 << 21, 1 << 20


def go_mode(st: os.stat_result) -> int:
    m = st.st_mode & 0o777
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFDIR:
        m |= _GO_DIR
    elif fmt == stat.S_IFLNK:
        m |= _GO_SYMLINK
    elif fmt == stat.S_IFIFO:
        m |= _GO_PIPE
    elif fmt == stat.S_IFSOCK:
        m |= _GO_SOCKET
    elif fmt == stat.S_IFCHR:
        m |= _GO_DEVICE | _GO_CHARDEV
    elif fmt == stat.S_IFBLK:
        m |= _GO_DEVICE
    if st.st_mode & stat.S_ISUID:
        m |= _GO_SETUID
    if st.st_mode & stat.S_ISGID:
        m |= _GO_SETGID
    if st.st_mode & stat.S_ISVTX:
        m |= _GO_STICKY
    return m


def _inside(root: str, host_path: str) -> str:
    """The container path of a host path under root."""
    return posixpath.normpath("/" + os.path.relpath(host_path, root))


@dataclass
class _View:
    fs: FSView
    root: str
    mount_points: list[ViewMount]       # volumes and binds (not the /etc files)

    def mount_of(self, path: str) -> ViewMount | None:
        """The deepest volume or bind holding `path` (a container path)."""
        best: ViewMount | None = None
        for m in self.mount_points:
            d = m.destination.rstrip("/") or "/"
            if path == d or path.startswith(d + "/"):
                if best is None or len(d) > len(best.destination):
                    best = m
        return best


class _CopyExtractor(Extractor):
    """Layer extraction rules without whiteout conversion (docker cp keeps names)."""

    def whiteout(self, m: tarfile.TarInfo, parent: str, base: str) -> None:
        raise InvalidParameter(f"refusing to copy {m.name!r}: whiteout names are reserved")


class ArchiveService:
    def __init__(self, registry: ContainerRegistry, images: Images,
                 volumes: Volumes | None = None, ids: IdMap = IDENTITY) -> None:
        self.containers = registry
        self.images = images
        self.volumes = volumes
        self.ids = ids

    def _unmap(self, ti: tarfile.TarInfo) -> tarfile.TarInfo:
        """tarfile.add's filter: the entry's owner as the container sees it."""
        if self.ids.remapped:
            ti.uid, ti.gid = self.ids.to_container(ti.uid, ti.gid)
            ti.uname = ti.gname = ""     # the host's names of subordinate ids mean nothing
        return ti

    @contextlib.asynccontextmanager
    async def _rootfs(self, c: Container) -> AsyncIterator[str]:
        """The container's rootfs, mounted for the duration when it is not running."""
        async with self.containers.lock(c.id):
            was_running = c.state.running
            image = self.images.resolve(c.image_id)
            root = await asyncio.to_thread(self.images.mount_rootfs, c.id, image)
        try:
            yield root
        finally:
            if not was_running:
                async with self.containers.lock(c.id):
                    if not c.state.running:
                        await asyncio.to_thread(self.images.unmount_rootfs, c.id)

    @contextlib.asynccontextmanager
    async def _view(self, c: Container) -> AsyncIterator[_View]:
        """The container's filesystem with its volumes and binds, as dockerd's
        containerFSView: volumes are mounted for the copy when it is not running."""
        async with self.containers.lock(c.id):
            was_running = c.state.running
            try:
                image = self.images.resolve(c.image_id)
                root = await asyncio.to_thread(self.images.mount_rootfs, c.id, image)
                if not was_running and self.volumes is not None:
                    # as a start would (and dockerd's create-time copy-up)
                    await mount_volumes(self.volumes, c, root)
                own = {c.resolv_conf_path, c.hostname_path, c.hosts_path}
                mounts = [ViewMount(m.destination, m.source, "ro" not in m.options)
                          for m in container_mounts(c) if m.type == "bind"]
                view = FSView(root, mounts)
                await view.open()
            except BaseException:
                if not was_running:
                    await self._release(c)
                raise
        try:
            yield _View(view, root, [m for m in mounts if m.source not in own])
        finally:
            await view.close()
            if not was_running:
                async with self.containers.lock(c.id):
                    await self._release(c)

    async def _release(self, c: Container) -> None:
        """Undo what a copy mounted for a container that was not running (unless it
        started meanwhile: then its run owns the mounts). The caller holds the lock."""
        if c.state.running:
            return
        if self.volumes is not None:
            await unmount_volumes(self.volumes, c)
        await asyncio.to_thread(self.images.unmount_rootfs, c.id)

    @staticmethod
    def _resolve(root: str, path: str, follow_last: bool = False) -> str:
        if not path:
            raise InvalidParameter("path must not be empty")
        path = posixpath.normpath("/" + path)
        if follow_last:
            return resolve_in_root(root, path)
        parent, base = posixpath.split(path)
        resolved_parent = resolve_in_root(root, parent)
        return os.path.join(resolved_parent, base) if base else resolved_parent

    @staticmethod
    def _stat_doc(host_path: str, name: str, root: str) -> dict[str, Any]:
        try:
            st = os.lstat(host_path)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {name} in container") from None
        link = ""
        if stat.S_ISLNK(st.st_mode):
            # moby: the link fully evaluated in the container's scope, as an absolute path
            target = resolve_in_root(root, _inside(root, host_path))
            link = _inside(root, target)
        mtime = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
        return {"name": os.path.basename(name.rstrip("/")) or "/", "size": st.st_size,
                "mode": go_mode(st), "mtime": format_time(mtime).replace("000Z", "Z"),
                "linkTarget": link}

    async def stat(self, c: Container, path: str) -> dict[str, Any]:
        async with self._view(c) as v:
            return await v.fs.run(
                lambda: self._stat_doc(self._resolve(v.root, path), path, v.root))

    async def get(self, c: Container, path: str) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
        cm = self._view(c)
        v = await cm.__aenter__()
        # a trailing "/." or "/" copies a directory's content, like dockerd
        follow = path.endswith("/") or path.endswith("/.")

        def locate() -> tuple[str, dict[str, Any]]:
            host = self._resolve(v.root, path, follow)
            return host, self._stat_doc(host, path, v.root)
        try:
            host, doc = await v.fs.run(locate)
        except BaseException:
            await cm.__aexit__(None, None, None)
            raise
        name = os.path.basename(posixpath.normpath(path)) or "."

        def make_tar(out: Any) -> None:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(host, arcname=name, recursive=True, filter=self._unmap)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in v.fs.stream(make_tar):
                    yield chunk
            finally:
                await cm.__aexit__(None, None, None)
        return doc, chunks()

    async def put(self, c: Container, path: str, body: AsyncIterator[bytes],
                  no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
        async with self._view(c) as v:
            def locate() -> str:
                dest = self._resolve(v.root, path, True)
                try:
                    st = os.lstat(dest)
                except FileNotFoundError:
                    raise NotFound(f"Could not find the file {path} in container "
                                   f"{c.name}") from None
                if not stat.S_ISDIR(st.st_mode):
                    raise InvalidParameter("extraction point is not a directory")
                return dest
            dest = await v.fs.run(locate)
            # moby's checkIfPathIsInAVolume, on the path as resolved in the container
            mount = v.mount_of(_inside(v.root, dest))
            if mount is not None and not mount.rw:
                raise InvalidParameter("mounted volume is marked read-only")
            if mount is None and c.host_config.get("ReadonlyRootfs"):
                raise InvalidParameter("container rootfs is marked read-only")
            r, w = os.pipe()
            loop = asyncio.get_running_loop()

            def extract() -> None:
                with os.fdopen(r, "rb") as src:
                    ex = _CopyExtractor(dest, self.ids)
                    # "r|*": streaming, gzip/bzip2/xz recognised in-process
                    with tarfile.open(fileobj=src, mode="r|*") as tar:
                        for m in tar:
                            ex.entry(tar, m)
                    ex.finish()
                    while src.read(1 << 16):
                        pass
            job = v.fs.run(extract)
            wfile = os.fdopen(w, "wb")
            try:
                async for chunk in body:
                    try:
                        await loop.run_in_executor(None, wfile.write, chunk)
                    except BrokenPipeError:
                        break
            finally:
                try:
                    wfile.close()
                except BrokenPipeError:
                    pass
            try:
                await job
            except tarfile.TarError as e:
                raise InvalidParameter(f"invalid tar archive: {e}") from None

    def export(self, c: Container) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            async with self._rootfs(c) as root:
                def make_tar(out: Any) -> None:
                    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                        for entry in sorted(os.listdir(root)):
                            tar.add(os.path.join(root, entry), arcname=entry,
                                    filter=self._unmap)
                async for chunk in from_thread(make_tar):
                    yield chunk
        return chunks()


__all__ = ["ArchiveService"]
