"""Reading small kernel files (/proc, /sys) that may be absent."""
from __future__ import annotations

import errno
import os


def read_text(path: str) -> str:
    """The stripped content of a small file, or "" when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def stat_fields(pid: int | str, dir_fd: int | None = None) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (so [0] is the state,
    field 3, and [19] the start time, field 22), or None when the process is gone;
    with dir_fd, read through that open /proc/<pid> directory."""
    try:
        fd = os.open("stat" if dir_fd is not None else f"/proc/{pid}/stat",
                     os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    fields = raw.rsplit(b")", 1)[-1].decode("ascii", "replace").split()
    return fields if len(fields) > 19 else None


def children(pid: int | str, strict: bool = False) -> set[int]:
    """The pids of the process's children (of all its threads), empty when it is gone.
    `strict`: a read that fails for another reason than the process (or thread) being
    gone (EMFILE, ENOMEM) raises OSError instead of leaving its children out."""
    out: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError as e:
        if strict and not _gone(e):
            raise
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.update(int(p) for p in f.read().split())
        except OSError as e:
            if strict and not _gone(e):
                raise
    return out


def _gone(e: OSError) -> bool:
    return e.errno in (errno.ENOENT, errno.ESRCH)
