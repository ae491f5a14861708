"""Reading small kernel files (/proc, /sys) that may be absent."""
from __future__ import annotations


def read_text(path: str) -> str:
    """The stripped content of a small file, or "" when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""
