"""Networking: the predefined bridge/host/none networks, IPAM, sandboxes, container files."""
from __future__ import annotations

from .model import Endpoint, Network, NetworkMember
from .service import NetworkService

__all__ = ["Endpoint", "Network", "NetworkMember", "NetworkService"]
