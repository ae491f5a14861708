"""runc in mount namespaces without the other containers' rootfs mounts.

runc's work grows with the mounts of the namespace it runs in: `runc create`
reads /proc/self/mountinfo in full four times (intelrdt, the cgroup v1 root,
`runc init`'s rootfs parent mount and cgroup mounts) and its CLONE_NEWNS copies
every mount. Each running container leaves one mount in the host's namespace
(its overlay rootfs), so with 1,000 containers every create would pay for 1,000.

So the containers directory (`<data-root>/containers`, where every rootfs is
mounted) is a private bind mount onto itself, made at start-up while nothing is
mounted below it (and unmounted by a shutdown that leaves no rootfs mounted below
it: with live-restore it stays for the next start), and a create runs in a
namespace of its own: a thread `unshare`s a copy of the host's namespace, makes it all private (nothing done
there reaches the host), binds this container's rootfs onto a stage directory,
detaches the containers directory's bind mount (every rootfs mount below it goes
in one umount) and moves the stage back to the rootfs path: config.json is the
same as without. conmon (in the host's namespace) runs `runc create` through
`nsenter --mount=/proc/<daemon>/task/<thread>/ns/mnt`; the thread holds the
namespace until conmon reports the container's pid, i.e. runc create exited,
then ends, which frees it (the container's own namespace is runc's copy).

The other verbs (`runc kill`, `state`, `ps`, `pause`, `update`; not `start` and
`delete`, whose hooks need the host's mounts;
not exec) need no container's mounts and no mount made later: they run (through
nsenter too) in one long-lived namespace, a private copy of the host's made at
start-up with every mount detached but those on the way to runc's state, its
binary and libraries, /proc, /dev/null and the cgroup mounts, so it holds no
other host mount; a thread holds it until shutdown.

Both are used only once CROWDED containers run: with fewer, nsenter's exec costs
more than the other containers' mounts cost runc.

A container with a bind mount of `shared` or `slave` propagation is created in the
host's namespace: its mount must be a peer (or slave) of the host's, which a
private copy is not. So is every one when the bind mount could not be made
(something was already mounted below the containers directory at start-up: a
daemon of an earlier version left running containers) or a namespace fails.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import errno
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..util.mounts import unescape_mountinfo, is_mountpoint, mount, umount

log = logging.getLogger("pydockerd.runtime")

NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
_CLONE_NEWNS = 0x00020000
_MS_BIND, _MS_MOVE, _MS_REC, _MS_PRIVATE = 0x1000, 0x2000, 0x4000, 1 << 18
_PROPAGATING = frozenset(("shared", "rshared", "slave", "rslave"))
_libc = ctypes.CDLL(None, use_errno=True)
# running containers from which runc runs in these namespaces: below, the nsenter
# step (~3.5 ms a create) costs more than the other rootfs mounts cost runc (~25 us
# each); above, a start stays within a few percent of the first (bench/run_mount_scale.py)
CROWDED = 32


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


class RuncNamespaces:
    """Mount namespaces for runc without the rootfs mounts of other containers: one
    per create, and one long-lived for the other verbs."""

    def __init__(self, containers_dir: str, stage: str, runc_root: str,
                 binaries: list[str], running: Callable[[], int] = lambda: CROWDED) -> None:
        """`binaries`: every runtime's; the first (the default) checks the verbs' namespace.
        `running`: how many containers run (each holds a rootfs mount)."""
        self.running = running
        self.containers_dir = containers_dir.rstrip("/")
        self.stage = stage
        self.runc_root = runc_root
        self.binaries = binaries
        self.enabled = False
        self.verbs = ""          # the verbs' namespace (for nsenter), "" for the host's
        self._verbs_end = threading.Event()

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
        if self.enabled:
            self.verbs = self._start_verbs()

    def release(self) -> None:
        """At shutdown: end the verbs' namespace; unmount the containers directory's
        bind mount when no rootfs is mounted below it (live-restore keeps both; the
        next start reuses them)."""
        self._verbs_end.set()
        try:
            if is_mountpoint(self.containers_dir) and not _mounted_below(self.containers_dir):
                umount(self.containers_dir)
        except OSError as e:
            log.warning("unmounting %s: %s", self.containers_dir, e)

    def crowded(self) -> bool:
        """Whether runc is better off in our namespaces: enabled, and enough containers
        run that their mounts cost runc more than the nsenter step (see CROWDED)."""
        return self.enabled and self.running() >= CROWDED

    def verbs_ns(self) -> str:
        """The namespace runc's other verbs run in now: the verbs' one, or "" (the
        host's) while few containers run."""
        return self.verbs if self.crowded() else ""

    @contextlib.asynccontextmanager
    async def for_create(self, rootfs: str, spec: dict[str, Any]) -> AsyncIterator[str | None]:
        """A mount namespace with `rootfs` mounted and no other container's rootfs, held
        while the block runs: its /proc path (for nsenter), or None (use the host's)."""
        if (not self.crowded() or not rootfs.startswith(self.containers_dir + "/")
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

    # ---------------------------------------------------------------- runc's verbs

    def _start_verbs(self) -> str:
        """The namespace for `runc kill`, `state`, `pause`, ...: a private copy
        of the host's with only the mounts they use (those on the way to runc's state,
        its binaries and libraries, /proc, /dev/null, the cgroup mounts), held by a
        thread until release(). So it holds no other host mount and needs no later one.
        Checked with `runc list`; "" (the host's) when anything fails."""
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        threading.Thread(target=self._hold_verbs, args=(ready,), name="runc-mntns",
                         daemon=True).start()
        try:
            path = ready.result()
            subprocess.run([NSENTER, f"--mount={path}", self.binaries[0], "--root",
                            self.runc_root, "list", "-q"],
                           check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            self._verbs_end.set()
            log.warning("runc's verbs run in the host's mount namespace: %s", e)
            return ""
        return path

    def _hold_verbs(self, ready: concurrent.futures.Future[str]) -> None:
        try:
            if _libc.unshare(_CLONE_NEWNS) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
            mount("", "/", "", "", _MS_REC | _MS_PRIVATE)
            found = [shutil.which(b) or b for b in self.binaries]
            needed = [self.runc_root, *found, *(os.path.realpath(b) for b in found),
                      "/etc", "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/proc/self",
                      "/dev/null", "/sys/fs/cgroup"]
            _detach_all_but(needed, ("/sys/fs/cgroup",))
        except BaseException as e:  # noqa: BLE001 - handed to _start_verbs
            ready.set_exception(e)
            return
        ready.set_result(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/mnt")
        self._verbs_end.wait()


def _within(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def _detach_all_but(needed: list[str], subtrees: tuple[str, ...]) -> None:
    """In this thread's (private) namespace, detach every mount but those on the way to
    a `needed` path and those in `subtrees`."""
    with open("/proc/thread-self/mountinfo") as f:
        mounts = [(int(parts[0]), int(parts[1]), unescape_mountinfo(parts[4]))
                  for parts in (line.split(" ", 5) for line in f)]
    for point in to_detach(mounts, needed, subtrees):
        for _ in range(16):         # every mount stacked there (the top one goes first)
            try:
                umount(point, detach=True)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOENT):
                    raise
                break


def to_detach(mounts: list[tuple[int, int, str]], needed: list[str],
              subtrees: tuple[str, ...]) -> list[str]:
    """Of mountinfo's (id, parent id, mount point)s, the points to detach so that only
    the mounts on the way to a `needed` path and those in `subtrees` stay: the top-most
    of the others (a detach takes the mounts below it along), parents first."""
    def kept(point: str) -> bool:
        return (any(_within(p, point) for p in needed)
                or any(_within(point, top) for top in subtrees))
    gone: set[int] = set()
    points: list[str] = []
    for mid, parent, point in sorted(mounts, key=lambda m: m[2].count("/")):
        if parent in gone or kept(point):
            if parent in gone:
                gone.add(mid)
            continue
        gone.add(mid)
        if point not in points:
            points.append(point)
    return points
