"""Volumes: the `local` driver and legacy volume plugins (docs/ARCHITECTURE.md, Volumes)."""
from __future__ import annotations

from .model import ANONYMOUS_LABEL, Volume, VolumeUsage
from .service import VolumeService

__all__ = ["ANONYMOUS_LABEL", "Volume", "VolumeService", "VolumeUsage"]
