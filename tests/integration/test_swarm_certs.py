"""Certificates of pydockerd as a swarm worker of a private Moby manager
(tests/integration/moby_manager.py): `docker swarm ca --rotate` completes with
the node in the swarm (new root trusted, a certificate of the new CA with the
cluster's --cert-expiry, TLS info reported, stored for a restart; the manager's
renewed certificate no longer offers ALPN, which tlsdial.py copes with), and a
promotion shows as Swarm.Error while the node keeps running its tasks."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509

from conftest import cleanup_daemon
from moby_manager import MobyManager, manager_session
from polling import wait_until
from test_swarm_tasks import create, join, remove, start_worker, tasks, wait_states


@pytest.fixture(scope="module")
def manager():
    yield from manager_session()


@pytest.fixture
def worker(manager: MobyManager, images_dir):
    """A pydockerd joined to the manager; it leaves and its node is removed."""
    d = start_worker(manager, images_dir, "pdt-swcert-")
    try:
        join(manager, d, images_dir)
        yield d
        d.cli("swarm", "leave", check=False)
        wait_until(lambda: node(manager, d.node_id)["Status"]["State"] == "down", 20,
                   what="the node to be down")
        manager.cli("node", "rm", d.node_id)
    finally:
        cleanup_daemon(d)
        shutil.rmtree(d.base, ignore_errors=True)


def swarm_info(d) -> dict:
    return json.loads(d.out("info", "--format", "{{json .Swarm}}"))


def node(manager: MobyManager, node_id: str) -> dict:
    return json.loads(manager.out("node", "inspect", node_id))[0]


def stored(d, name: str) -> bytes:
    return Path(d.data_root, "swarm", "certificates", name).read_bytes()


def test_ca_rotate_completes_with_the_node_in_the_swarm(manager: MobyManager, worker):
    d, nid = worker, worker.node_id
    cluster_tls = json.loads(manager.out("info", "--format", "{{json .Swarm.Cluster.TLSInfo}}"))
    old_cert = x509.load_pem_x509_certificate(stored(d, "cert.pem"))
    assert node(manager, nid)["Description"]["TLSInfo"] == cluster_tls
    svc = create(manager, "certsvc", "busybox", "sleep", "600")
    try:
        running = wait_states(manager, svc, ["running"])[0]
        # certificates issued from now on are valid for an hour (the minimum)
        manager.cli("swarm", "update", "--cert-expiry", "1h")
        # not detached: the CLI waits until every node has a certificate of the
        # new CA and trusts the new root
        manager.cli("swarm", "ca", "--rotate", "--quiet", timeout=120)
        new_tls = json.loads(manager.out("info", "--format",
                                         "{{json .Swarm.Cluster.TLSInfo}}"))
        assert new_tls["TrustRoot"] != cluster_tls["TrustRoot"]
        assert new_tls["CertIssuerPublicKey"] != cluster_tls["CertIssuerPublicKey"]
        info = node(manager, nid)
        assert info["Description"]["TLSInfo"] == new_tls
        assert info["Status"]["State"] == "ready"
        # the node trusts the new root and holds a new certificate (same node ID,
        # the new expiry), stored under its data root
        assert stored(d, "ca.pem").decode() == new_tls["TrustRoot"]
        cert = x509.load_pem_x509_certificate(stored(d, "cert.pem"))
        assert cert.serial_number != old_cert.serial_number
        assert cert.subject == old_cert.subject          # CN = the same node ID
        left = cert.not_valid_after_utc - datetime.now(timezone.utc)
        assert timedelta(minutes=50) < left <= timedelta(hours=1, minutes=1)
        assert swarm_info(d)["LocalNodeState"] == "active" and swarm_info(d)["Error"] == ""
        # its task ran on through the rotation, in the same container
        [task] = [t for t in tasks(manager, svc) if t["DesiredState"] == "running"]
        assert task["ID"] == running["ID"] and task["Status"]["State"] == "running"
        # a restart resumes with the renewed identity
        d.restart()
        wait_until(lambda: node(manager, nid)["Status"]["State"] == "ready"
                   and swarm_info(d)["LocalNodeState"] == "active", 20,
                   what="the restarted node to be ready")
        assert swarm_info(d)["NodeID"] == nid
        # a node that was down when a rotation began comes back through it: the
        # manager, renewed already, presents the new CA's certificate
        d.stop()
        manager.cli("swarm", "ca", "--rotate", "--detach", "--quiet")
        third = json.loads(manager.out("info", "--format", "{{json .Swarm.Cluster.TLSInfo}}"))
        assert third != new_tls
        wait_until(lambda: node(manager, manager.node_id)["Description"]["TLSInfo"]
                   ["CertIssuerPublicKey"] == third["CertIssuerPublicKey"], 30,
                   what="the manager's own certificate of the third CA")
        d.start()

        def converged() -> dict | None:
            if json.loads(manager.out("info", "--format",
                                      "{{json .Swarm.Cluster.RootRotationInProgress}}")):
                return None
            final = json.loads(manager.out("info", "--format",
                                           "{{json .Swarm.Cluster.TLSInfo}}"))
            return final if node(manager, nid)["Description"]["TLSInfo"] == final else None
        final = wait_until(converged, 60, what="the rotation to complete with the node back")
        # (during a rotation the cluster's TrustRoot is still the old root)
        assert final["CertIssuerPublicKey"] == third["CertIssuerPublicKey"]
        assert final["TrustRoot"] != new_tls["TrustRoot"]
        assert stored(d, "ca.pem").decode() == final["TrustRoot"]
    finally:
        remove(manager, d, svc)
        manager.cli("swarm", "update", "--cert-expiry", "2160h", check=False)


def test_promotion_is_an_error_in_info_and_the_node_keeps_working(manager: MobyManager,
                                                                   worker):
    d, nid = worker, worker.node_id
    svc = create(manager, "promosvc", "--constraint", f"node.id=={nid}", "busybox",
                 "sleep", "600")
    try:
        wait_states(manager, svc, ["running"])
        assert "promoted to a manager" in manager.out("node", "promote", nid)
        info = wait_until(lambda: (i := swarm_info(d))["Error"] and i, 20,
                          what="the promotion in docker info")
        assert "pydockerd can only be a worker" in info["Error"]
        assert f"docker node rm {nid}" in info["Error"]
        assert info["LocalNodeState"] == "active" and info["ControlAvailable"] is False
        text = d.out("info")
        assert "Is Manager: false" in text and "pydockerd can only be a worker" in text
        # still a worker: it runs what it is given
        manager.cli("service", "scale", "--detach", f"{svc}=2")
        wait_states(manager, svc, ["running", "running"])
        r = d.cli("node", "ls", check=False)
        assert r.returncode != 0 and "Worker nodes can't be used" in r.stderr_text
        # the managers cannot demote a node outside their raft (as the text says);
        # the fixture's leave + node rm clears it
        r = manager.cli("node", "demote", nid, check=False)
        assert r.returncode != 0 and "can't find manager in raft memberlist" in r.stderr
        assert "pydockerd can only be a worker" in swarm_info(d)["Error"]
    finally:
        remove(manager, d, svc)
