"""Wait for any process (child or not) to exit, without threads: pidfd + event loop.

pydockerd is a child subreaper (see daemon.py), so conmon monitors and
detached exec processes re-parent to it; `wait_pid` reaps them when they are
our children and returns their exit status when it can know it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import warnings

from ..util.procfs import children, stat_fields

log = logging.getLogger("pydockerd.exec")


async def wait_pid(pid: int) -> int | None:
    """Wait until `pid` exits. Returns its exit code if it was our child, else None."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return _reap(pid)
    try:
        await pidfd_exited(fd)
    finally:
        os.close(fd)
    return _reap(pid)


async def pidfd_exited(fd: int) -> None:
    """Wait until the process of pidfd `fd` has exited (it may be a zombie then)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)
    loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


def reap_pidfd(fd: int) -> bool:
    """Reap the exited process of pidfd `fd` if it is our child (True); False when it
    is not (another's child, or reaped already). No pid is involved, so a pid reused
    meanwhile is never reaped by mistake."""
    try:
        return os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG) is not None
    except ChildProcessError:
        return False


async def reap_pidfds(pidfds: list[int]) -> None:
    """Wait for each process in turn, a parent before its children (a child whose
    parent is gone is ours: the daemon is a child subreaper), reap those that are
    our children (`reap_pidfd`: a process another reaps is left to it), and close
    the pidfds."""
    try:
        for fd in pidfds:
            await pidfd_exited(fd)
            reap_pidfd(fd)
    finally:
        for fd in pidfds:
            os.close(fd)


def kill_tree(pid: int) -> list[int]:
    """SIGKILL the process `pid` (a child of ours, not reaped) and its descendants;
    pidfds of the descendants, parents first (for `reap_pidfds`: they are ours once
    their parents are gone). Each is stopped before its children are read: a stopped
    process, or one with a signal pending, forks no more, and does not die and hand
    its children to the daemon before they are read. Every member found is killed
    even when the scan fails (no pidfd, no /proc read under fd pressure): none is
    left stopped; the failure is logged, as descendants may have been missed."""
    try:
        root = os.pidfd_open(pid)
    except ProcessLookupError:
        return []
    except OSError as e:        # our child, not reaped: its pid is still its own
        log.warning("killing %d without its descendants: %s", pid, e)
        os.kill(pid, signal.SIGKILL)
        return []
    tree: dict[int, int] = {pid: root}          # parents first (insertion order)
    handed = False
    try:
        try:
            _scan(tree)
        except OSError as e:
            log.warning("killing %d: descendants may be missed: %s", pid, e)
        handed = True
    finally:
        for fd in tree.values():
            signal_pidfd(fd, signal.SIGKILL)
        os.close(root)
        if not handed:
            for p, fd in tree.items():
                if p != pid:
                    os.close(fd)
    return [fd for p, fd in tree.items() if p != pid]


def _scan(tree: dict[int, int]) -> None:
    """Stop each member of `tree` and add its children (with their pidfds), pass
    after pass over every member until one finds no new child: a member not stopped
    yet when its parent's children were read may have cloned with CLONE_PARENT (as
    runc's nsexec does), giving its parent a child after that read. Each pass stops
    every member before it reads any children: in the last pass no member could
    clone after a read."""
    grew = True
    while grew:
        grew = False
        members = list(tree)
        for parent in members:
            signal_pidfd(tree[parent], signal.SIGSTOP)
        for parent in members:
            for kid in sorted(children(parent, strict=True) - tree.keys()):
                try:
                    kid_fd = os.pidfd_open(kid)
                except ProcessLookupError:
                    continue
                if kid in children(parent, strict=True):    # not reaped (reused)
                    tree[kid] = kid_fd
                    grew = True
                else:
                    os.close(kid_fd)


def signal_pidfd(pidfd: int, sig: int) -> None:
    """Signal the process behind a pidfd; nothing when it has exited already."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> int | None:
    try:
        wpid, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if wpid == 0:
        return None
    return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) \
        else 128 + os.WTERMSIG(status)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); look at its state
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def set_child_subreaper() -> None:
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def watch_children_by_pidfd() -> None:
    """Python 3.11's default child watcher starts a thread per subprocess (each
    runc, ip, iptables call) to block in waitpid; the pidfd watcher registers the
    child's pidfd with the running loop instead (3.12 does so by itself). Call on
    the loop that starts every subprocess; a no-op where pidfds or child watchers
    are not the way (other Pythons, an event loop with its own, e.g. uvloop)."""
    if sys.version_info >= (3, 12) or not isinstance(
            asyncio.get_event_loop_policy(), asyncio.DefaultEventLoopPolicy):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(watcher)
