"""Volumes with the `local` driver (see docs/ARCHITECTURE.md, Volumes)."""
from __future__ import annotations

from .model import ANONYMOUS_LABEL, Volume, VolumeUsage
from .service import VolumeService

__all__ = ["ANONYMOUS_LABEL", "Volume", "VolumeService", "VolumeUsage"]
