"""The volume model: what the store keeps (to_dict); `docker volume inspect`'s JSON is
api/wire_volumes.py's."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# dockerd ≥ 23 labels the volumes it makes for `-v /path` and image VOLUMEs
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


@dataclass
class Volume:
    name: str
    driver: str
    mountpoint: str                      # local: <data-root>/volumes/<name>/_data
    created_at: str                      # RFC 3339, seconds (as dockerd's local driver)
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    scope: str = "local"
    status: dict[str, Any] | None = None  # a plugin's live Status (never stored)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.labels or {})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("status", None)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Volume":
        return cls(**d)


@dataclass(frozen=True)
class VolumeUsage:
    size: int          # bytes, -1 when not computed
    ref_count: int     # containers referencing the volume, -1 when not computed
