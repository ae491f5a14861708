"""Event bus with a ring buffer, behind GET /events."""
from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    type: str                      # container, image, network, volume, daemon
    action: str                    # create, start, die, ...
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = 0

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "Type": self.type, "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": "local", "time": self.time_nano // 1_000_000_000, "timeNano": self.time_nano,
        }
        if self.type in ("container", "image"):
            # legacy fields older clients still read
            d["status"] = self.action
            d["id"] = self.actor_id
            if "image" in self.attributes:
                d["from"] = self.attributes["image"]
        return d


# past events kept for `since` (dockerd's eventsLimit: a replay gives at most the last
# 256; a fuller ring only held memory after work, issue 10)
HISTORY = 256


class EventBus:
    def __init__(self, capacity: int = HISTORY) -> None:
        self._ring: collections.deque[Event] = collections.deque(maxlen=capacity)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self.published = 0          # events since start (engine_daemon_events_total)

    def publish(self, type: str, action: str, actor_id: str,
                attributes: dict[str, str] | None = None) -> Event:
        ev = Event(type, action, actor_id, dict(attributes or {}), time.time_ns())
        self.published += 1
        self._ring.append(ev)
        for q in self._subscribers:
            q.put_nowait(ev)
        return ev

    def history(self, since_nano: int, until_nano: int | None = None) -> list[Event]:
        return [e for e in self._ring
                if e.time_nano >= since_nano and (until_nano is None or e.time_nano <= until_nano)]

    @property
    def subscribers(self) -> int:
        """How many /events streams listen now (engine_daemon_events_subscribers_total)."""
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(q)
