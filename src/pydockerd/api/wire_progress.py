"""Docker's JSON messages for streamed operations (jsonmessage.JSONMessage): the
progress of pull, push, load and import (one compact object per line, CRLF) and
the output of build (LF, whitespace keep-alives). Services yield the typed events
of pydockerd.progress; the routes encode them here."""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

from ..progress import (BuiltImage, ErrorEvent, KeepAlive, LayerStatus, Progress,
                        ProgressEvent, PushedDigest, Status, StreamText)

_BAR_WIDTH = 50


def human_size(n: float) -> str:
    """go-units HumanSize: 4 significant digits, decimal units."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def _load_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def bar_text(current: int, total: int) -> str:
    """The `progress` text of pull and push."""
    if total > 0:
        filled = min(_BAR_WIDTH, int(_BAR_WIDTH * current / total))
        arrow = ">" if filled < _BAR_WIDTH else "="
        body = "=" * max(filled - 1, 0) + (arrow if filled else "") + " " * (_BAR_WIDTH - filled)
        return f"[{body}] {human_size(current):>8}/{human_size(total)}"
    return f"{human_size(current):>8}"


def load_bar_text(current: int, total: int) -> str:
    """The `progress` text of load and import (an arrow even at 0%)."""
    filled = int(_BAR_WIDTH * current / total) if total else _BAR_WIDTH
    body = "=" * max(filled - 1, 0) + (">" if filled < _BAR_WIDTH else "=") + \
        " " * (_BAR_WIDTH - filled)
    return f"[{body}] {_load_size(current):>8}/{_load_size(total)}"


def message(ev: ProgressEvent) -> dict[str, Any] | None:
    """The JSON message of one event (None: a keep-alive, no message)."""
    if isinstance(ev, Status):
        return {"status": ev.text, "id": ev.id} if ev.id else {"status": ev.text}
    if isinstance(ev, LayerStatus):
        return {"status": ev.text, "progressDetail": {}, "id": ev.id}
    if isinstance(ev, Progress):
        text = bar_text(ev.current, ev.total) if ev.style == "registry" else \
            load_bar_text(ev.current, ev.total)
        return {"status": ev.action,
                "progressDetail": {"current": ev.current, "total": ev.total},
                "progress": text, "id": ev.id}
    if isinstance(ev, ErrorEvent):
        detail: dict[str, Any] = {"message": ev.message} if ev.code is None else \
            {"code": ev.code, "message": ev.message}
        return {"errorDetail": detail, "error": ev.message}
    if isinstance(ev, PushedDigest):
        return {"progressDetail": {}, "aux": {"Tag": ev.tag, "Digest": ev.digest,
                                              "Size": ev.size}}
    if isinstance(ev, BuiltImage):
        return {"aux": {"ID": ev.image_id}}
    if isinstance(ev, StreamText):
        return {"stream": ev.text}
    if isinstance(ev, KeepAlive):
        return None
    raise TypeError(f"not a progress event: {ev!r}")


def encode(ev: ProgressEvent, newline: bytes = b"\r\n") -> bytes:
    """One event as its line: compact JSON + newline; a keep-alive is the newline."""
    msg = message(ev)
    if msg is None:
        return newline
    return json.dumps(msg, separators=(",", ":")).encode() + newline


async def lines(events: AsyncIterator[ProgressEvent], newline: bytes = b"\r\n"
                ) -> AsyncIterator[bytes]:
    """A response body: pull, push, load and import end lines with CRLF (as dockerd's
    progress streams), build with LF. Closing the body closes the events' generator
    at once (its cleanup: cancel the work, close registry sessions)."""
    try:
        async for ev in events:
            yield encode(ev, newline)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def build_lines(events: AsyncIterator[ProgressEvent]) -> AsyncIterator[bytes]:
    """A build's response body: LF-terminated messages and keep-alives."""
    return lines(events, b"\n")


__all__ = ["message", "encode", "lines", "build_lines", "bar_text", "load_bar_text",
           "human_size"]
