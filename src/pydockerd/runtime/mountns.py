"""`runc create` in a mount namespace without the other containers' rootfs mounts.

runc's work grows with the mounts of the namespace it runs in: `runc create`
reads /proc/self/mountinfo in full four times (intelrdt, the cgroup v1 root,
`runc init`'s rootfs parent mount and cgroup mounts) and its CLONE_NEWNS copies
every mount. Each running container leaves one mount in the host's namespace
(its overlay rootfs), so with 1,000 containers every create would pay for 1,000.

So the containers directory (`<data-root>/containers`, where every rootfs is
mounted) is a private bind mount onto itself, made at start-up while nothing is
mounted below it (and unmounted by a shutdown that leaves no rootfs mounted below
it: with live-restore it stays for the next start), and a create runs in a namespace of its own: a thread
`unshare`s a copy of the host's namespace, makes it all private (nothing done
there reaches the host), binds this container's rootfs onto a stage directory,
detaches the containers directory's bind mount (every rootfs mount below it goes
in one umount) and moves the stage back to the rootfs path: config.json is the
same as without. conmon (in the host's namespace) runs `runc create` through
`nsenter --mount=/proc/<daemon>/task/<thread>/ns/mnt`; the thread holds the
namespace until conmon reports the container's pid, i.e. runc create exited,
then ends, which frees it (the container's own namespace is runc's copy).

Not for a container with a bind mount of `shared` or `slave` propagation: its
mount must be a peer (or slave) of the host's, which a private copy is not. Nor
when the bind mount could not be made (something was already mounted below the
containers directory at start-up: a daemon of an earlier version left running
containers) or a namespace fails: then runc runs in the host's namespace.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator
from typing import Any

from ..util.mounts import is_mountpoint, mount, umount

log = logging.getLogger("pydockerd.runtime")

NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
_CLONE_NEWNS = 0x00020000
_MS_BIND, _MS_MOVE, _MS_REC, _MS_PRIVATE = 0x1000, 0x2000, 0x4000, 1 << 18
_PROPAGATING = frozenset(("shared", "rshared", "slave", "rslave"))
_libc = ctypes.CDLL(None, use_errno=True)


def _mounted_below(path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ", 5)[4].startswith(prefix) for line in f)


def propagates(spec: dict[str, Any]) -> bool:
    """Does the OCI spec want mount events shared with the host (a bind mount or the
    rootfs with shared or slave propagation)?"""
    linux = spec.get("linux") or {}
    if linux.get("rootfsPropagation", "") in _PROPAGATING:
        return True
    return any(_PROPAGATING.intersection(m.get("options") or ()) for m in spec.get("mounts", ()))


class CreateNamespaces:
    """Namespaces for `runc create` without the rootfs mounts of other containers."""

    def __init__(self, containers_dir: str, stage: str) -> None:
        self.containers_dir = containers_dir.rstrip("/")
        self.stage = stage
        self.enabled = False

    def setup(self) -> None:
        """Make the containers directory a private bind mount (kept across a shutdown
        that leaves containers running) and the stage directory."""
        path = self.containers_dir
        try:
            os.makedirs(path, mode=0o711, exist_ok=True)
            os.makedirs(self.stage, mode=0o700, exist_ok=True)
            if not is_mountpoint(path):
                if _mounted_below(path):
                    log.info("rootfs mounts below %s made before it was a mount: runc "
                             "create runs in the host's mount namespace", path)
                    return
                mount(path, path, "", "", _MS_BIND)
            mount("", path, "", "", _MS_PRIVATE)
        except OSError as e:
            log.warning("runc create runs in the host's mount namespace: %s", e)
            return
        self.enabled = os.access(NSENTER, os.X_OK)

    def release(self) -> None:
        """At shutdown: unmount the containers directory's bind mount when no rootfs
        is mounted below it (live-restore keeps both; the next start reuses them)."""
        try:
            if is_mountpoint(self.containers_dir) and not _mounted_below(self.containers_dir):
                umount(self.containers_dir)
        except OSError as e:
            log.warning("unmounting %s: %s", self.containers_dir, e)

    @contextlib.asynccontextmanager
    async def for_create(self, rootfs: str, spec: dict[str, Any]) -> AsyncIterator[str | None]:
        """A mount namespace with `rootfs` mounted and no other container's rootfs, held
        while the block runs: its /proc path (for nsenter), or None (use the host's)."""
        if (not self.enabled or not rootfs.startswith(self.containers_dir + "/")
                or propagates(spec)):
            yield None
            return
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        release = threading.Event()
        thread = threading.Thread(target=self._hold, args=(rootfs, ready, release),
                                  name="create-mntns", daemon=True)
        thread.start()
        try:
            try:
                path: str | None = await asyncio.wrap_future(ready)
            except OSError as e:
                log.warning("runc create runs in the host's mount namespace: %s", e)
                path = None
            yield path
        finally:
            release.set()

    def _hold(self, rootfs: str, ready: concurrent.futures.Future[str],
              release: threading.Event) -> None:
        """In a thread of its own: unshare (implies CLONE_FS for it alone), trim, and
        hold the namespace until released."""
        try:
            if _libc.unshare(_CLONE_NEWNS) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
            mount("", "/", "", "", _MS_REC | _MS_PRIVATE)
            mount(rootfs, self.stage, "", "", _MS_BIND)
            umount(self.containers_dir, detach=True)
            mount(self.stage, rootfs, "", "", _MS_MOVE)
        except BaseException as e:  # noqa: BLE001 - handed to for_create
            ready.set_exception(e)
            return                  # the namespace ends with the thread
        ready.set_result(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/mnt")
        release.wait()
