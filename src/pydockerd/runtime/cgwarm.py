"""Keep the kernel's cgroup attach lock fast while containers are being created.

Every write of a pid to a cgroup's `cgroup.procs` or `tasks` (runc create puts
its init into the container's cgroups that way) takes the kernel's global
`cgroup_threadgroup_rwsem` for writing. That is a per-cpu rwsem whose writer,
when no writer came recently, first waits for an RCU grace period
(`rcu_sync_enter`): 5-15 ms on this kind of host, during which `runc init`
waits, so it is on the critical path of every `docker run`. A writer that comes
while an earlier one is recent (the rcu_sync is not idle yet: it goes idle one
grace period after the last writer) does not wait.

So while a start is under way, one daemon thread moves itself into the cgroup
it is already in (its own tid into the `tasks` file of its own cgroup: the
kernel takes the lock, finds nothing to move) every few milliseconds: the first
such write pays the grace period in parallel with the start's other work (rootfs,
network, conmon's and runc's start-up, ~10 ms before runc's write), the later ones
keep the lock warm until `runc create` is done, so runc's writes do not wait.
Nothing changes in any cgroup; what the container sees is unchanged. Readers of
the rwsem (fork, exit anywhere on the host) take its slow path meanwhile, an
atomic operation more. The thread's cgroup is read again before each write (a
move of the daemon by someone else is never undone); where the hierarchies are
mounted comes from mountinfo (runtime/cgroupmounts.py, as for exec), not from an
assumed /sys/fs/cgroup. When the write cannot be
made (no such file, no permission, a hierarchy we cannot find) the warmer turns
itself off: runc then waits as it always did. A start keeps it warm for
MAX_HOLD at most (a hung `runc create` does not keep the thread writing).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

from .cgroupmounts import UNIFIED, CgroupMounts, host_cgroup_mounts, parse_proc_cgroup

log = logging.getLogger("pydockerd.runtime")

PERIOD = 0.004      # s between writes while held: well within a grace period
MAX_HOLD = 2.0      # s a start keeps it warm at most (a `runc create` that hangs)
def own_cgroup_file(mounts: CgroupMounts | None = None,
                    cgroups: str | None = None) -> str | None:
    """The file that moves the calling thread within its own cgroup: `tasks` of its
    cgroup in a cgroup v1 hierarchy (pids first), else `cgroup.threads` of its
    unified one, wherever mountinfo says they are mounted; None when neither is
    found. `mounts` (the daemon's) and `cgroups` (/proc/thread-self/cgroup's text)
    are read from the host unless given."""
    if mounts is None:
        mounts = host_cgroup_mounts()
    if cgroups is None:
        with open("/proc/thread-self/cgroup") as f:
            cgroups = f.read()
    v1: list[tuple[str, str]] = []
    unified: str | None = None
    for names, path in parse_proc_cgroup(cgroups):
        if names == UNIFIED:
            unified = path
        elif not names.startswith("name="):
            v1.append((names, path))
    v1.sort(key=lambda np: np[0] != "pids")
    for names, path in v1:
        directory = mounts.directory(names, path)
        if directory is not None and os.path.exists(os.path.join(directory, "tasks")):
            return os.path.join(directory, "tasks")
    if unified is not None:
        directory = mounts.directory(UNIFIED, unified)
        if directory is not None and os.path.exists(os.path.join(directory,
                                                                 "cgroup.threads")):
            return os.path.join(directory, "cgroup.threads")
    return None


class CgroupLockWarmer:
    """`with warmer.held():` around a container's start; see the module's doc.
    `target` finds the file to write the thread's tid to (tests give their own)."""

    def __init__(self, target: Callable[[], str | None] = own_cgroup_file,
                 period: float = PERIOD, max_hold: float = MAX_HOLD) -> None:
        self._target = target
        self._period = period
        self._max_hold = max_hold
        self._until = 0.0       # monotonic time the newest hold stops counting
        self._cond = threading.Condition()
        self._holders = 0
        self._thread: threading.Thread | None = None
        self.disabled = False
        self.writes = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.disabled:
            yield
            return
        with self._cond:
            self._holders += 1
            self._until = time.monotonic() + self._max_hold
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cgroup-warm",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._holders -= 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._holders == 0 or time.monotonic() >= self._until:
                    self._cond.wait()
            try:
                self._touch()
            except (OSError, ValueError) as e:
                log.debug("cgroup lock warm-up off: %s", e)
                with self._cond:
                    self.disabled = True
                    self._thread = None
                return
            time.sleep(self._period)

    def _touch(self) -> None:
        path = self._target()
        if path is None:
            raise ValueError("no cgroup file to write")
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(threading.get_native_id()).encode())
        finally:
            os.close(fd)
        self.writes += 1


__all__ = ["CgroupLockWarmer", "own_cgroup_file"]
