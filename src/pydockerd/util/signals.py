"""Signal names as Docker accepts them: "SIGTERM", "TERM", "15", "SIGRTMIN+3"."""
from __future__ import annotations

import signal

from ..errors import InvalidParameter


def parse_signal(value: str | int | None, default: int = signal.SIGKILL) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, int):
        sig = value
    else:
        s = value.strip().upper()
        if s.isdigit():
            sig = int(s)
        else:
            if not s.startswith("SIG"):
                s = "SIG" + s
            if s.startswith("SIGRTMIN+") or s.startswith("SIGRTMAX-"):
                base = signal.SIGRTMIN if s.startswith("SIGRTMIN") else signal.SIGRTMAX
                try:
                    off = int(s[9:])
                except ValueError:
                    raise InvalidParameter(f"Invalid signal: {value}") from None
                sig = base + off if base == signal.SIGRTMIN else base - off
            else:
                try:
                    sig = int(getattr(signal.Signals, s))
                except AttributeError:
                    raise InvalidParameter(f"Invalid signal: {value}") from None
    if not 0 < sig < 65:
        raise InvalidParameter(f"Invalid signal: {value}")
    return sig
