"""What GET /info shows of the node's swarm membership (no gRPC here: this
module is loaded by every daemon)."""
from __future__ import annotations

from dataclasses import dataclass

INACTIVE, PENDING, ACTIVE, ERROR = "inactive", "pending", "active", "error"


@dataclass(frozen=True, slots=True)
class RemoteManager:
    node_id: str
    addr: str


@dataclass(frozen=True, slots=True)
class SwarmInfo:
    """dockerd's swarm.Info for a worker (or a node outside any swarm)."""
    state: str = INACTIVE
    node_id: str = ""
    node_addr: str = ""
    error: str = ""
    managers: list[RemoteManager] | None = None
