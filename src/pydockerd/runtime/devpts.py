"""The pty of a `docker exec -t` process, from the container's devpts (runtime/nschild.py,
in B, after it joined the container's mount namespace), opened as runc's
safeAllocPty does: a container process may have replaced /dev/ptmx or
/dev/pts/ptmx (a symlink, a bind mount of something else) by then.

/dev/pts/ptmx is opened as an O_PATH handle without following a last symlink and
must be devpts' ptmx inode (char device 5:2, inode 2 on a devpts filesystem)
before it is opened for real through the host's /proc (a handle the forked side
took before joining the container's mounts); the slave end comes from the master
(TIOCGPTPEER), or, on a kernel before 4.13, from /dev/pts/<n> checked the same
way (char device 136:<n> on devpts). Anything else fails the exec.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import stat
import struct
import termios

PTMX = "/dev/pts/ptmx"
DEVPTS_SUPER_MAGIC = 0x1CD1
PTMX_INO = 2                        # fs/devpts/inode.c: mknod_ptmx
PTMX_RDEV = os.makedev(5, 2)        # TTYAUX_MAJOR, 2
PTS_MAJOR = 136                     # UNIX98_PTY_SLAVE_MAJOR
_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430
_TIOCGPTPEER = 0x5441


class NotDevpts(Exception):
    """The path is not what devpts puts there."""


def attach_console(libc: ctypes.CDLL, proc_fd: int, console_fd: int,
                   size: tuple[int, int] | None, ptmx: str = PTMX) -> None:
    """A new pty: the master goes to the daemon over `console_fd`, the slave becomes
    stdio and the controlling terminal. `proc_fd`: the host's /proc (O_PATH)."""
    master, slave = open_pty(libc, proc_fd, ptmx)
    try:
        if size is not None:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        socket.send_fds(socket.socket(fileno=console_fd), [b"\0"], [master])
    finally:
        os.close(master)
    for i in range(3):
        os.dup2(slave, i)
    os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def open_pty(libc: ctypes.CDLL, proc_fd: int, ptmx: str = PTMX) -> tuple[int, int]:
    """(master, slave) of a new pty of the devpts instance `ptmx` is on."""
    handle = os.open(ptmx, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        check(libc, handle, PTMX_RDEV, PTMX_INO, ptmx)
        master = reopen(proc_fd, handle, os.O_RDWR | os.O_NOCTTY)
    finally:
        os.close(handle)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        return master, _peer(libc, proc_fd, master)
    except BaseException:
        os.close(master)
        raise


def _peer(libc: ctypes.CDLL, proc_fd: int, master: int) -> int:
    try:
        fd: int = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        return fd
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTTY):
            raise
    n = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))[0]
    path = os.path.join(os.path.dirname(PTMX), str(n))
    handle = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        check(libc, handle, os.makedev(PTS_MAJOR, n), None, path)
        return reopen(proc_fd, handle, os.O_RDWR | os.O_NOCTTY)
    finally:
        os.close(handle)


def check(libc: ctypes.CDLL, fd: int, rdev: int, ino: int | None, what: str) -> None:
    """NotDevpts unless `fd` is the char device `rdev` (inode `ino`) on a devpts mount."""
    buf = (ctypes.c_long * 32)()        # struct statfs: f_type first, a word
    if libc.fstatfs(fd, buf) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    if buf[0] != DEVPTS_SUPER_MAGIC:
        raise NotDevpts(f"{what} is not on a devpts mount (filesystem magic {buf[0]:#x})")
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != rdev \
            or (ino is not None and st.st_ino != ino):
        kind = "a char device" if stat.S_ISCHR(st.st_mode) else "not a char device"
        raise NotDevpts(f"{what} is not the devpts device {os.major(rdev)}:{os.minor(rdev)} "
                        f"({kind} {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}, "
                        f"inode {st.st_ino})")


def reopen(proc_fd: int, handle: int, flags: int) -> int:
    """Open what an O_PATH handle names, through /proc's fd links (the host's /proc
    when `proc_fd` is an open handle of it)."""
    name = f"self/fd/{handle}"
    if proc_fd < 0:
        return os.open("/proc/" + name, flags | os.O_CLOEXEC)
    return os.open(name, flags | os.O_CLOEXEC, dir_fd=proc_fd)


__all__ = ["NotDevpts", "attach_console", "check", "open_pty", "reopen"]
