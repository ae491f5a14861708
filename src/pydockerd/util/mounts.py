"""Is something mounted at a path? Read from /proc/self/mountinfo.

os.path.ismount misses a bind mount from the same filesystem (same st_dev),
so it is never trusted before unmounting or deleting.
"""
from __future__ import annotations

import os
import re

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def is_mountpoint(path: str) -> bool:
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split(" ", 5)
                if len(fields) > 4 and _unescape(fields[4]) == real:
                    return True
    except OSError:
        return os.path.ismount(real)
    return False


def mount_of(path: str) -> tuple[str, list[str]]:
    """The mount point holding `path` (symlinks resolved) and its optional fields
    (`shared:N`, `master:N`, ...), as moby's getSourceMount reads mountinfo."""
    real = os.path.realpath(path)
    best, fields = "/", []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" ")
            if len(parts) < 7:
                continue
            point = _unescape(parts[4])
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fields = point, parts[6:parts.index("-", 6)]
    return best, fields
