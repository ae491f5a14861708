"""Swarm membership of this node. pydockerd is never a swarm manager; until it can
join a swarm as a worker it is not part of any swarm, and answers every swarm
request as dockerd does on such a node: 503 with dockerd's messages."""
from __future__ import annotations

from typing import NoReturn

from .errors import NotImplementedErr, Unavailable

NOT_IN_SWARM = "This node is not part of a swarm"
NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or '
                 '"docker swarm join" to connect this node to swarm and try again.')


class NoSwarm:
    """A node outside any swarm (the only state pydockerd has today)."""

    def require_manager(self) -> NoReturn:
        """Cluster objects (nodes, services, tasks, secrets, configs) live on managers."""
        raise Unavailable(NOT_A_MANAGER)

    def leave(self, force: bool) -> NoReturn:
        raise Unavailable(NOT_IN_SWARM)

    def init(self) -> NoReturn:
        raise NotImplementedErr("pydockerd cannot be a swarm manager: initialise the swarm "
                                "on a Moby dockerd")

    def join(self) -> NoReturn:
        raise NotImplementedErr("joining a swarm is not supported by pydockerd yet")
