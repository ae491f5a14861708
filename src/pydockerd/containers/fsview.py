"""A private view of a container's filesystem with its volumes and bind mounts.

What `docker cp` and the archive routes read and write must be what the
container sees: files under a volume or a bind mount are in the volume, not in
the rootfs below its mount point. As moby's containerFSView does, one thread
gets a mount namespace of its own (`unshare(CLONE_NEWNS)`, `/` made rslave so
nothing made here reaches the host), binds each mount onto the rootfs there,
and runs the copy's file work. The mounts exist only in that namespace: when
the thread ends they are gone with it, and nothing is ever mounted on the
host's view of the rootfs (no leak after a crash, no propagation to a shared
host mount, no race with the container's own start and stop).

Mount targets are resolved inside the rootfs (symlinks chased within it), then
opened with O_PATH|O_NOFOLLOW and mounted through /proc/thread-self/fd/N, so a
symlink swapped in meanwhile cannot redirect the mount.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import errno
import os
import queue
import threading
from dataclasses import dataclass
from typing import AsyncIterator, Callable, TypeVar

from ..errors import SystemError_
from ..runtime.users import resolve_in_root
from ..util.threadstream import ThreadPipe, from_thread

T = TypeVar("T")

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 32, 4096, 16384
_MS_PRIVATE, _MS_SLAVE = 1 << 18, 1 << 19

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(), None,
                       ctypes.c_ulong(flags), None), f"mount {source or ''} on {target}")


@dataclass(frozen=True)
class ViewMount:
    """One mount of the container, as the view binds it."""
    destination: str             # inside the container
    source: str                  # host path (a volume's _data, a bind source, an /etc file)
    rw: bool = True


def _depth(m: ViewMount) -> int:
    return len([p for p in m.destination.split("/") if p])


def _create_if_missing(path: str, is_dir: bool) -> None:
    """moby's createIfNotExists for a mount target (path already resolved in the root)."""
    if os.path.lexists(path):
        return
    if is_dir:
        os.makedirs(path, 0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    os.close(fd)


def _bind(root: str, m: ViewMount) -> None:
    if not os.path.exists(m.source):
        return                  # an /etc file not written yet (never started): as moby
    is_dir = os.path.isdir(m.source)       # follows links: the source is the host's
    target = resolve_in_root(root, m.destination)
    _create_if_missing(target, is_dir)
    fd = os.open(target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        pinned = f"/proc/thread-self/fd/{fd}"
        real = os.readlink(pinned)
        if real != root and not real.startswith(root.rstrip("/") + "/"):
            raise OSError(errno.EXDEV, f"mount target {m.destination} leaves the rootfs")
        _mount(m.source, pinned, _MS_BIND | _MS_REC)
        # remounts and propagation changes need the path (the fd is below the new mount)
        _mount(None, real, _MS_PRIVATE | _MS_REC)
        if not m.rw:
            _mount(None, real, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
    finally:
        os.close(fd)


class FSView:
    """One thread in its own mount namespace, serving the copy's file work."""

    def __init__(self, root: str, mounts: list[ViewMount]) -> None:
        self.root = root
        self.mounts = sorted(mounts, key=_depth)
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def open(self) -> None:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,),
                                        name="container-fs-view", daemon=True)
        self._thread.start()
        try:
            await asyncio.wrap_future(ready)
        except OSError as e:
            await self.close()
            raise SystemError_(f"mounting the container's volumes: {e.strerror or e}") from None

    def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            # a namespace of this thread's own (unshare implies CLONE_FS for it alone)
            _check(_libc.unshare(_CLONE_NEWNS), "unshare")
            _mount(None, "/", _MS_SLAVE | _MS_REC)
            for m in self.mounts:
                _bind(self.root, m)
        except BaseException as e:  # noqa: BLE001 - handed to open()
            ready.set_exception(e)
            return                   # the namespace and its mounts end with the thread
        ready.set_result(None)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()

    async def run(self, fn: Callable[[], T]) -> T:
        """fn() in the view's thread (so in its mount namespace)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)
        self._jobs.put(job)
        return await asyncio.wrap_future(fut)

    def stream(self, produce: Callable[[ThreadPipe], None]) -> AsyncIterator[bytes]:
        """produce(out) in the view's thread, its bytes streamed to the loop."""
        return from_thread(produce, spawn=self._jobs.put)

    async def close(self) -> None:
        """End the thread (its namespace and mounts go with it); waits for it."""
        t, self._thread = self._thread, None
        if t is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(t.join)


__all__ = ["FSView", "ViewMount"]
