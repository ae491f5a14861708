"""Containers' root filesystems: an overlay of the image's layers + a rw layer.

    containers/<id>/init      dockerd's init layer (images/initlayer.py): the top
                              lowerdir, between the image's layers and upper/; a
                              symlink to init-layer/ (see below)
    containers/<id>/upper/    the container's changes (overlay upperdir)
    containers/<id>/work/     overlay workdir
    containers/<id>/rootfs/   the mountpoint (the OCI bundle's root.path)
    containers/<id>/rwlayer.json   {"driver", "layers": [chain ids]}

The overlay is mounted with `mount -t overlay` run (through util/cmd.py) with
cwd = data_root/layers (via `env -C`), using the short relative lowerdirs
`l/<short>`, so even 128-layer images fit the one-page option limit.

The init layer's content is the same for every container and a lowerdir is
never written, so one copy, `<data_root>/init-layer/`, made on first use, is
shared: creating a container links to it (one syscall) instead of making a
dozen directories and files. Containers made by an earlier version keep their
own `init/` directory, used as it is.

With storage_driver="vfs" the layers are copied (whiteouts applied) into
rootfs/ at create time and mount/unmount are no-ops.

All methods block (mount, file walks): call them with asyncio.to_thread from
async code. ImageService exposes them under the same names.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile

from ..errors import NotFound, NotImplementedErr, SystemError_
from ..util.cmd import run_sync
from ..util.fsatomic import write_atomic
from ..util.idmap import IDENTITY, IdMap
from .initlayer import make_init_layer
from .layers import LayerStore
from .model import Image
from . import volatile as volatile_mounts
from ..util.mounts import is_mountpoint, mount, umount
from ..util.du import dir_size

log = logging.getLogger("pydockerd.images")

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2
MAX_LAYERS = 125
PAGE = 4096


def mounted(path: str) -> bool:
    """Is path a mount point (util/mounts.is_mountpoint: statx, or mountinfo)?"""
    return is_mountpoint(path)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    # tarsafe.py (the unpacking) is loaded by a diff or a commit, not by an idle daemon
    from .tarsafe import OPAQUE_XATTR
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class Snapshots:
    def __init__(self, data_root: str, layers: LayerStore, driver: str = "overlay2",
                 ids: IdMap = IDENTITY) -> None:
        if driver not in ("overlay2", "overlay", "vfs"):
            raise NotImplementedErr(f"storage driver {driver!r} is not supported "
                                    "(overlay2 and vfs are)")
        self.driver = "overlay2" if driver == "overlay" else driver
        self.containers_root = os.path.join(data_root, "containers")
        self.init_root = os.path.join(data_root, "init-layer")
        self._layers = layers
        self._ids = ids         # --userns-remap: the rw layer belongs to the remapped root

    # --- paths -----------------------------------------------------------------
    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.containers_root, container_id)

    def rootfs_path(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), "rootfs")

    def upper_dir(self, container_id: str) -> str:
        """The container's changes (overlay upperdir; the rootfs itself with vfs)."""
        return self._upper(container_id) if self.driver == "overlay2" else \
            self.rootfs_path(container_id)

    def layers_in_use(self) -> set[str]:
        """Chain ids under some container's rw layer (not under a removed container's
        directory set aside to be deleted, `.rm-<id>`: it holds no mount, and a layer
        only it names must not be kept)."""
        out: set[str] = set()
        if not os.path.isdir(self.containers_root):
            return out
        for cid in os.listdir(self.containers_root):
            if cid.startswith("."):
                continue
            try:
                out.update(self._chain(cid))
            except (NotFound, OSError, ValueError, KeyError):
                continue
        return out

    def _upper(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), "upper")

    def _init(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), "init")

    def _init_lowers(self, container_id: str) -> list[str]:
        """The init layer as a lowerdir (containers made before it existed have none)."""
        init = self._init(container_id)
        return [init] if os.path.isdir(init) else []

    def _work(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), "work")

    def _chain(self, container_id: str) -> list[str]:
        try:
            with open(os.path.join(self.container_dir(container_id), "rwlayer.json")) as f:
                return list(json.load(f)["layers"])
        except FileNotFoundError:
            raise NotFound(f"no rw layer for container {container_id}") from None

    # --- lifecycle -------------------------------------------------------------
    def create_rw_layer(self, container_id: str, image: Image, durable: bool = True) -> None:
        """`durable` False: its record is not fsynced (an auto-remove container's rw
        layer is volatile: it does not survive a host crash anyway; an fsync on a busy
        data root costs 0.4 ms to tens of ms)."""
        if len(image.layers) > MAX_LAYERS:
            raise SystemError_(f"max depth exceeded: image has more than {MAX_LAYERS} layers")
        for chain in image.layers:
            if not os.path.isdir(self._layers.diff_dir(chain)):
                raise SystemError_(f"layer {chain} of image {image.id} is missing")
        cdir = self.container_dir(container_id)
        os.makedirs(cdir, exist_ok=True)
        os.makedirs(self.rootfs_path(container_id), exist_ok=True)
        owned = [self.rootfs_path(container_id)]
        if self.driver == "overlay2":
            os.makedirs(self._upper(container_id), exist_ok=True)
            os.makedirs(self._work(container_id), exist_ok=True)
            owned += [self._upper(container_id), self._work(container_id)]
            init = self._init(container_id)
            if not os.path.lexists(init):
                os.symlink(self._shared_init(), init)
        if self._ids.remapped:      # the container's dir: root:<remapped gid> 0710, as dockerd
            os.chown(cdir, 0, self._ids.root()[1])
            for d in owned:
                os.chown(d, *self._ids.root())
        write_atomic(os.path.join(cdir, "rwlayer.json"),
                     json.dumps({"driver": self.driver, "layers": image.layers}),
                     fsync=durable)
        if self.driver == "vfs":
            root = self.rootfs_path(container_id)
            for chain in image.layers:
                _apply_layer_dir(self._layers.diff_dir(chain), root)
            # no init layer with vfs: it would have to be written through the
            # image's own files (symlinks included) and its diff is not computed

    def _shared_init(self) -> str:
        """The init layer all containers share, made (atomically) if missing."""
        if not os.path.isdir(self.init_root):
            tmp = tempfile.mkdtemp(prefix="init-layer.tmp", dir=os.path.dirname(self.init_root))
            try:
                os.chmod(tmp, 0o755)
                make_init_layer(tmp, self._ids.root() if self._ids.remapped else None)
                os.rename(tmp, self.init_root)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not os.path.isdir(self.init_root):   # not made by a concurrent create
                    raise
        return self.init_root

    def mount_rootfs(self, container_id: str, image: Image | None = None,
                     volatile: bool = False) -> str:
        """Mount the container's rootfs (idempotent); return its path. `volatile`:
        the rw layer is thrown away after this mount (images/volatile.py)."""
        rootfs = self.rootfs_path(container_id)
        if self.driver == "vfs":
            return rootfs
        chain = image.layers if image is not None else self._chain(container_id)
        if mounted(rootfs):
            return rootfs
        layers = self._layers.lowerdirs(chain)       # relative to the layers' root
        lowers = self._init_lowers(container_id) + layers
        if not lowers:
            empty = os.path.join(self.container_dir(container_id), "empty")
            os.makedirs(empty, exist_ok=True)
            lowers = [empty]
        tail = f",upperdir={self._upper(container_id)},workdir={self._work(container_id)}"
        if os.path.exists("/sys/module/overlay/parameters/index"):
            tail += ",index=off"
        cdir, work = self.container_dir(container_id), self._work(container_id)
        if not volatile_mounts.prepare(cdir, work, volatile):
            return self._mount_overlay(rootfs, lowers, layers, tail)
        try:
            return self._mount_overlay(rootfs, lowers, layers, tail + ",volatile")
        except SystemError_ as e:
            if mounted(rootfs):
                raise
            refused = volatile_mounts.option_refused(e)
        volatile_mounts.prepare(cdir, work, False)      # a mark the failed mount left
        path = self._mount_overlay(rootfs, lowers, layers, tail)
        if refused:             # only what the kernel refused, and it mounts without
            volatile_mounts.Support.available = False   # a kernel before 5.10
            log.info("overlay mounts without `volatile` (not supported by the kernel)")
        return path

    def _mount_overlay(self, rootfs: str, lowers: list[str], layers: list[str],
                       tail: str) -> str:
        # the options must fit in one page: absolute lowerdirs and mount(2) from this
        # process when they do (the common case), else relative ones from mount(8)
        # run in the layers' root (a process: the daemon's threads share one cwd)
        root = self._layers.root
        absolute = [os.path.join(root, p) if p in layers else p for p in lowers]
        opts = f"lowerdir={':'.join(absolute)}{tail}"
        if len(opts) < PAGE:
            try:
                mount("overlay", rootfs, "overlay", opts)
            except OSError as e:
                raise SystemError_(f"cannot mount the rootfs of "
                                   f"{os.path.basename(os.path.dirname(rootfs))}: "
                                   f"{e.strerror}") from e
            return rootfs
        opts = f"lowerdir={':'.join(lowers)}{tail}"
        if len(opts) >= PAGE:
            raise SystemError_("overlay mount options exceed one page: too many layers")
        run_sync(["env", "-C", root, "mount", "-t", "overlay", "overlay", "-o", opts, rootfs])
        return rootfs

    def unmount_rootfs(self, container_id: str) -> None:
        rootfs = self.rootfs_path(container_id)
        if self.driver == "vfs" or not mounted(rootfs):
            return
        try:
            umount(rootfs)
        except OSError:
            if mounted(rootfs):
                try:
                    umount(rootfs, detach=True)     # busy: detach like dockerd does
                except OSError as e:
                    raise SystemError_(f"cannot unmount the rootfs of {container_id}: "
                                       f"{e.strerror}") from e

    def remove_rw_layer(self, container_id: str) -> None:
        cdir = self.container_dir(container_id)
        if not os.path.lexists(cdir):
            return
        self.unmount_rootfs(container_id)
        if mounted(self.rootfs_path(container_id)):
            raise SystemError_(f"cannot remove rw layer of {container_id}: rootfs still mounted")
        shutil.rmtree(cdir)

    # --- inspection --------------------------------------------------------------
    def changes(self, container_id: str) -> list[dict[str, object]]:
        """[{"Path", "Kind"}] like GET /containers/{id}/changes (0 modify, 1 add, 2 delete)."""
        if self.driver == "vfs":
            raise NotImplementedErr("container changes are not supported with the vfs driver")
        upper = self._upper(container_id)
        if not os.path.isdir(upper):
            raise NotFound(f"no rw layer for container {container_id}")
        lowers = self._init_lowers(container_id) + \
            [self._layers.diff_dir(c) for c in reversed(self._chain(container_id))]
        out: list[dict[str, object]] = []

        changed_dirs: set[str] = set()

        def in_lower(rel: str) -> os.stat_result | None:
            for lower in lowers:
                try:
                    st = os.stat(os.path.join(lower, rel))
                except OSError:
                    continue
                return st
            return None

        def walk(rel: str) -> None:        # moby's archive.changes() over the upper dir
            with os.scandir(os.path.join(upper, rel)) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                child = f"{rel}/{e.name}" if rel else e.name
                st = e.stat(follow_symlinks=False)
                is_dir = stat.S_ISDIR(st.st_mode)
                if _is_whiteout(st) or (is_dir and _is_opaque(e.path)):
                    kind = CHANGE_DELETE
                else:
                    kind = CHANGE_ADD
                    lower = in_lower(child)
                    if lower is not None:
                        if is_dir and stat.S_ISDIR(lower.st_mode) and \
                                lower.st_size == st.st_size and lower.st_mode == st.st_mode \
                                and lower.st_mtime_ns == st.st_mtime_ns:
                            walk(child)          # unchanged parent of changes
                            continue
                        kind = CHANGE_MODIFY
                out.append({"Path": "/" + child, "Kind": kind})
                if is_dir:
                    changed_dirs.add(child)
                if kind != CHANGE_MODIFY and rel and rel not in changed_dirs:
                    out.append({"Path": "/" + rel, "Kind": CHANGE_MODIFY})
                    changed_dirs.add(rel)
                if is_dir and not _is_whiteout(st):
                    walk(child)

        walk("")
        return out

    def rw_size(self, container_id: str) -> int:
        top = self._upper(container_id) if self.driver == "overlay2" else \
            self.rootfs_path(container_id)
        return dir_size(top)

    def graph_driver_data(self, container_id: str, image: Image) -> dict[str, str]:
        """GraphDriver.Data for container inspect."""
        if self.driver == "vfs":
            return {}
        lowers = ":".join(self._init_lowers(container_id) +
                          [self._layers.diff_dir(c) for c in reversed(image.layers)])
        return {"LowerDir": lowers, "MergedDir": self.rootfs_path(container_id),
                "UpperDir": self._upper(container_id), "WorkDir": self._work(container_id)}




def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    try:
        for name in os.listxattr(src, follow_symlinks=False):
            if not name.startswith("trusted.overlay."):
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                            follow_symlinks=False)
    except OSError:
        pass
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _remove(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _apply_layer_dir(src_dir: str, dst_dir: str) -> None:
    """vfs: copy one unpacked layer onto dst, applying its overlay whiteouts.

    dst_dir is always a real directory we checked; entries are created without
    following symlinks, and a non-directory in the way of a directory is replaced.
    """
    with os.scandir(src_dir) as it:
        entries = list(it)
    for e in entries:
        src = e.path
        dst = os.path.join(dst_dir, e.name)
        st = e.stat(follow_symlinks=False)
        try:
            dst_st: os.stat_result | None = os.lstat(dst)
        except FileNotFoundError:
            dst_st = None
        if _is_whiteout(st):
            if dst_st is not None:
                _remove(dst)
            continue
        if stat.S_ISDIR(st.st_mode):
            if dst_st is not None and (not stat.S_ISDIR(dst_st.st_mode) or _is_opaque(src)):
                _remove(dst)
                dst_st = None
            if dst_st is None:
                os.mkdir(dst, 0o700)
            _apply_layer_dir(src, dst)
            _copy_meta(src, dst, st)
            continue
        if dst_st is not None:
            _remove(dst)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, dst, follow_symlinks=False)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            os.mknod(dst, st.st_mode, st.st_rdev)
        else:
            continue
        _copy_meta(src, dst, st)
