"""Swarm request models."""
from __future__ import annotations

from typing import ClassVar

from .base import Model


class SwarmJoinRequest(Model, frozen=True):
    """POST /swarm/join (swarm.JoinRequest)."""
    go_type: ClassVar[str] = "swarm.JoinRequest"
    ListenAddr: str = ""
    AdvertiseAddr: str = ""
    DataPathAddr: str = ""
    RemoteAddrs: list[str] | None = None
    JoinToken: str = ""
    Availability: str = ""
