"""The registry side of the image story (pull, push, login, manifest inspect, search)."""
from __future__ import annotations

from typing import Any

from ..config import Config
from ..events import EventBus


class DistributionService:
    def __init__(self, cfg: Config, images: Any, events: EventBus) -> None:
        self.cfg = cfg
        self.images = images
        self.events = events
