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
