"""dockerd's JSON progress messages for pull and push (what the CLI renders as bars)."""
from __future__ import annotations

import json
from typing import Any


def line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\r\n").encode()


def status(text: str, id: str = "") -> dict[str, Any]:
    return {"status": text, "id": id} if id else {"status": text}


def layer_status(text: str, id: str) -> dict[str, Any]:
    return {"status": text, "progressDetail": {}, "id": id}


def error(message: str) -> dict[str, Any]:
    return {"errorDetail": {"message": message}, "error": message}


def human_size(n: float) -> str:
    """go-units HumanSize: 4 significant digits, decimal units."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def bar(action: str, id: str, current: int, total: int) -> dict[str, Any]:
    """A progress message: progressDetail plus jsonmessage's rendered bar text."""
    width = 50
    if total > 0:
        filled = min(width, int(width * current / total))
        arrow = ">" if filled < width else "="
        body = "=" * max(filled - 1, 0) + (arrow if filled else "") + " " * (width - filled)
        text = f"[{body}] {human_size(current):>8}/{human_size(total)}"
    else:
        text = f"{human_size(current):>8}"
    return {"status": action, "progressDetail": {"current": current, "total": total},
            "progress": text, "id": id}
