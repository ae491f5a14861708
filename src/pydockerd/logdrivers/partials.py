"""dockerd's PLogMetaData for the drivers that report partial messages (journald,
fluentd): the pieces of one long line share a random id and count up from 1; the
piece that ends the line is `last`. A line that was not split has none."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from .message import Message


@dataclass(frozen=True)
class PartialMeta:
    id: str
    ordinal: int
    last: bool


class PartialTracker:
    def __init__(self) -> None:
        self._open: dict[str, tuple[str, int]] = {}     # stream -> (id, pieces so far)

    def meta(self, msg: Message) -> PartialMeta | None:
        current = self._open.get(msg.stream)
        if msg.partial:
            pid, n = current if current is not None else (secrets.token_hex(32), 0)
            self._open[msg.stream] = (pid, n + 1)
            return PartialMeta(pid, n + 1, False)
        if current is None:
            return None
        del self._open[msg.stream]
        return PartialMeta(current[0], current[1] + 1, True)
