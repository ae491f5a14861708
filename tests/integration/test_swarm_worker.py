"""pydockerd as a worker of a swarm whose manager is a private Moby dockerd
(tests/integration/moby_manager.py): join, info, node ls / inspect, errors, leave."""
from __future__ import annotations

import json
import os
import socket

import pytest

from moby_manager import MobyManager, manager_session
from polling import wait_until
from pydockerd import __version__

JOINED = "This node joined a swarm as a worker."
WORKER_503 = "This node is not a swarm manager. Worker nodes can't be used"


@pytest.fixture(scope="module")
def manager():
    """The one private Moby manager of this module."""
    yield from manager_session()


def swarm_info(d) -> dict:
    return json.loads(d.out("info", "--format", "{{json .Swarm}}"))


def node(manager: MobyManager, node_id: str) -> dict:
    return json.loads(manager.out("node", "inspect", node_id))[0]


def assert_left_nothing(d) -> None:
    assert swarm_info(d)["LocalNodeState"] == "inactive"
    assert not os.path.exists(os.path.join(d.data_root, "swarm"))


def remove_node(manager: MobyManager, node_id: str) -> None:
    wait_until(lambda: node(manager, node_id)["Status"]["State"] == "down", 20,
               what="the node to be down")
    manager.cli("node", "rm", node_id)


def test_manager_is_a_drained_single_node_swarm(manager: MobyManager):
    nodes = manager.out("node", "ls", "--format", "{{.ID}} {{.Availability}} {{.ManagerStatus}}")
    assert nodes.split() == [manager.node_id, "Drain", "Leader"]
    assert manager.join_token().startswith("SWMTKN-1-")


def test_join_node_ls_info_leave(manager: MobyManager, fresh_daemon):
    d = fresh_daemon("--label", "zone=test", "--label", "tier=")
    token = manager.join_token()
    assert JOINED in d.out("swarm", "join", "--token", token, manager.addr)
    info = swarm_info(d)
    nid = info["NodeID"]
    assert info["LocalNodeState"] == "active" and nid and info["ControlAvailable"] is False
    assert info["NodeAddr"] == "127.0.0.1" and info["Error"] == ""
    assert info["RemoteManagers"] == [{"NodeID": manager.node_id, "Addr": manager.addr}]
    assert "Nodes" not in info and "Cluster" not in info
    text = d.out("info")
    assert "Swarm: active" in text and "Is Manager: false" in text and nid in text
    assert d.out("info", "--format", "{{json .Labels}}").strip() == '["zone=test","tier="]'
    # the identity is kept under the data root, the key readable by root only
    assert oct(os.stat(os.path.join(d.data_root, "swarm")).st_mode & 0o777) == "0o700"
    assert oct(os.stat(os.path.join(d.data_root, "swarm", "certificates", "key.pem")).st_mode & 0o777) \
        == "0o600"
    try:
        # the manager sees a Ready, Active worker with our hostname and version
        row = wait_until(lambda: [line for line in manager.out(
            "node", "ls", "--format",
            "{{.ID}}|{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.EngineVersion}}|"
            "{{.ManagerStatus}}").splitlines() if line.startswith(nid + "|")], 10,
            what="the node in node ls")
        assert row == [f"{nid}|{socket.gethostname()}|Ready|Active|{__version__}|"]
        desc = node(manager, nid)["Description"]
        assert desc["Platform"] == {"Architecture": os.uname().machine, "OS": "linux"}
        assert desc["Resources"]["NanoCPUs"] == os.cpu_count() * 10**9
        assert desc["Resources"]["MemoryBytes"] > 0
        engine = desc["Engine"]
        assert engine["EngineVersion"] == __version__
        assert engine["Labels"] == {"zone": "test", "tier": ""}
        plugins = {(p["Type"], p["Name"]) for p in engine["Plugins"]}
        assert {("Volume", "local"), ("Network", "bridge"), ("Network", "host"),
                ("Network", "null"), ("Log", "json-file")} <= plugins
        assert ("Network", "overlay") not in plugins
        assert desc["TLSInfo"]["TrustRoot"] == json.loads(manager.out(
            "info", "--format", "{{json .Swarm.Cluster.TLSInfo.TrustRoot}}"))
        # the node's availability follows the manager
        manager.cli("node", "update", "--availability", "pause", nid)
        assert node(manager, nid)["Spec"]["Availability"] == "pause"
        manager.cli("node", "update", "--availability", "active", nid)
        # a worker answers manager-only calls as dockerd's workers do
        r = d.cli("node", "ls", check=False)
        assert r.returncode != 0 and WORKER_503 in r.stderr_text
        r = d.cli("swarm", "join", "--token", token, manager.addr, check=False)
        assert r.returncode != 0 and "This node is already part of a swarm" in r.stderr_text
        assert swarm_info(d)["NodeID"] == nid
    finally:
        r = d.cli("swarm", "leave", check=False)
    assert r.returncode == 0 and "Node left the swarm." in r.stdout_text
    assert_left_nothing(d)
    remove_node(manager, nid)


def _other_ca_digest(token: str) -> str:
    parts = token.split("-")
    parts[2] = "1" + parts[2][1:] if parts[2][0] != "1" else "2" + parts[2][1:]
    return "-".join(parts)


def test_join_errors_leave_nothing_behind(manager: MobyManager, fresh_daemon):
    d = fresh_daemon()
    token = manager.join_token()
    prefix, version, digest, secret = token.split("-")
    cases = [
        ("SWMTKN-1-abc-def", "invalid join token", manager.addr),
        (f"SWMTKN-2-1-{digest}-{secret}", "requires FIPS mode", manager.addr),
        (_other_ca_digest(token), "remote CA does not match fingerprint", manager.addr),
        (f"{prefix}-{version}-{digest}-{'0' * 25}",
         "A valid join token is necessary to join this cluster", manager.addr),
        (token, "connect: connection refused", f"127.0.0.1:{_closed_port()}"),
    ]
    for tok, message, addr in cases:
        r = d.cli("swarm", "join", "--token", tok, addr, check=False)
        assert r.returncode != 0 and message in r.stderr_text, (tok, r.stderr_text)
        assert_left_nothing(d)
    # nothing was registered by the refused joins: the manager has one node
    assert manager.out("node", "ls", "-q").split() == [manager.node_id]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_join_timeout_leaves_the_node_pending(manager: MobyManager, fresh_daemon):
    d = fresh_daemon()
    # a manager address that accepts connections and never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        r = d.cli("swarm", "join", "--token", manager.join_token(), addr, check=False)
        assert r.returncode != 0
        assert "Timeout was reached before node joined" in r.stderr_text
        assert swarm_info(d)["LocalNodeState"] == "pending"
        assert "Swarm: pending" in d.out("info")
        assert "Node left the swarm." in d.out("swarm", "leave")
    assert_left_nothing(d)


def test_availability_and_restart_with_the_stored_identity(manager: MobyManager,
                                                           fresh_daemon):
    d = fresh_daemon()
    assert JOINED in d.out("swarm", "join", "--availability", "drain", "--token",
                           manager.join_token(), manager.addr)
    nid = swarm_info(d)["NodeID"]
    try:
        assert node(manager, nid)["Spec"]["Availability"] == "drain"
        d.restart()
        # no token needed: the node resumes with its identity from the data root
        wait_until(lambda: swarm_info(d)["LocalNodeState"] == "active", 15,
                   what="the restarted node to be active")
        assert swarm_info(d)["NodeID"] == nid
        wait_until(lambda: node(manager, nid)["Status"]["State"] == "ready", 15,
                   what="the node to be ready again")
        assert manager.out("node", "ls", "-q").split().count(nid) == 1
    finally:
        d.cli("swarm", "leave", check=False)
    assert_left_nothing(d)
    remove_node(manager, nid)


def test_removed_by_the_manager_shows_in_info_until_it_leaves(manager: MobyManager,
                                                               fresh_daemon):
    d = fresh_daemon()
    assert JOINED in d.out("swarm", "join", "--token", manager.join_token(), manager.addr)
    nid = swarm_info(d)["NodeID"]
    manager.cli("node", "rm", "--force", nid)
    info = wait_until(lambda: (i := swarm_info(d))["LocalNodeState"] == "error" and i, 20,
                      what="the node to report its removal")
    assert f"node {nid} was removed from swarm" in info["Error"]
    assert "Node left the swarm." in d.out("swarm", "leave")
    assert_left_nothing(d)
    # joining again gives a new identity
    assert JOINED in d.out("swarm", "join", "--token", manager.join_token(), manager.addr)
    new_id = swarm_info(d)["NodeID"]
    assert new_id != nid
    d.cli("swarm", "leave")
    remove_node(manager, new_id)
