"""pydockerd as a worker of a swarm whose manager is a private Moby dockerd
(tests/integration/moby_manager.py): the manager itself, join, info, node ls, leave."""
from __future__ import annotations

import pytest

from moby_manager import ManagerLock, ManagerUnavailable, MobyManager, new_manager


@pytest.fixture(scope="module")
def manager():
    """The one private Moby manager of this module; a clear failure where none can run."""
    with ManagerLock():
        try:
            m = new_manager()
        except ManagerUnavailable as e:
            pytest.fail(f"no Moby swarm manager for the swarm tests: {e}", pytrace=False)
        try:
            m.start()
        except BaseException as e:
            left = m.stop()
            pytest.fail(f"the Moby swarm manager did not start: {e} (left: {left})",
                        pytrace=False)
        try:
            yield m
        finally:
            left = m.stop()
            assert left == [], f"the manager left {left} behind"


def test_manager_is_a_drained_single_node_swarm(manager: MobyManager):
    nodes = manager.out("node", "ls", "--format", "{{.ID}} {{.Availability}} {{.ManagerStatus}}")
    assert nodes.split() == [manager.node_id, "Drain", "Leader"]
    assert manager.join_token().startswith("SWMTKN-1-")
