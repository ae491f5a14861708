"""Free space on a filesystem, and a reserve of it held back for when it runs out.

A `SpaceReserve` is a preallocated file. When the disk is full, deleting it
gives back room for the writes that must still work (recording a removal or
an exit); it is made again once the filesystem has room for it and a little
more. Only its owner (the store) releases it.
"""
from __future__ import annotations

import errno
import logging
import os

log = logging.getLogger("pydockerd.reserve")

MIB = 1024 * 1024


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class SpaceReserve:
    def __init__(self, path: str, size: int, chunk: int = MIB, headroom: int = MIB) -> None:
        self.path = path
        self.size = size
        self.chunk = chunk            # given back per release: the rest stays reserved
        self.headroom = headroom      # left free after the reserve is made whole again
        self.disabled = False         # the filesystem cannot hold one (logged once)

    def held(self) -> int:
        """Bytes reserved now (the full size when reserves are disabled here)."""
        if self.disabled:
            return self.size
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    @property
    def whole(self) -> bool:
        return self.held() >= self.size

    def release(self) -> bool:
        """Give one chunk back to the filesystem; False when nothing was left to give."""
        held = self.held()
        if held <= 0 or self.disabled:
            return False
        left = max(0, held - self.chunk)
        try:
            if left:
                os.truncate(self.path, left)
            else:
                os.unlink(self.path)
        except OSError as e:
            log.warning("cannot release reserved space at %s: %s", self.path, e)
            return False
        log.warning("disk full: released %d KiB of the space kept in reserve (%d KiB left)",
                    (held - left) // 1024, left // 1024)
        return True

    def restore(self) -> bool:
        """Make the reserve whole again if the filesystem has room for it and the headroom."""
        held = self.held()
        if held >= self.size:
            return True
        try:
            if free_bytes(os.path.dirname(self.path) or ".") < self.size - held + self.headroom:
                return False
            _allocate(self.path, self.size)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                self.disabled = True
                log.warning("cannot keep a space reserve at %s: %s", self.path, e)
            try:
                os.truncate(self.path, held)       # never hold less than before
            except OSError:
                pass
            return False
        return True


def _allocate(path: str, size: int) -> None:
    """Grow `path` to `size` bytes of allocated blocks (not a sparse file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            offset = os.fstat(fd).st_size               # no fallocate: write the blocks
            zeros = bytes(min(MIB, size - offset))      # made here: idle memory stays small
            while offset < size:
                offset += os.pwrite(fd, zeros[:size - offset], offset)
        os.fsync(fd)
    finally:
        os.close(fd)
