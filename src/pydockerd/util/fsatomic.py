"""Atomic file writes: temp file + fsync + rename."""
from __future__ import annotations

import os


def write_atomic(path: str, data: bytes | str, mode: int = 0o644, fsync: bool = True) -> None:
    """Replace `path` with `data` or leave it as it was (no temp file left on failure)."""
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
