"""A node outside any swarm answers swarm routes as dockerd does: 503, not 404."""
from __future__ import annotations

import json
import socket

import docker.errors
import pytest

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or '
               '"docker swarm join" to connect this node to swarm and try again.')


def _raw(daemon, method: str, path: str) -> tuple[int, dict]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(daemon.socket)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1.50/swarm"), ("GET", "/nodes"), ("GET", "/services"), ("GET", "/tasks"),
    ("GET", "/secrets"), ("GET", "/configs"), ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"), ("POST", "/services/create"), ("DELETE", "/nodes/x"),
    ("GET", "/services/x/logs?stdout=1"),
])
def test_manager_routes_are_503(daemon, method, path):
    assert _raw(daemon, method, path) == (503, {"message": NOT_MANAGER})


def test_leave_and_logs_without_stream(daemon):
    assert _raw(daemon, "POST", "/swarm/leave?force=1") == \
        (503, {"message": "This node is not part of a swarm"})
    status, body = _raw(daemon, "GET", "/tasks/x/logs")
    assert status == 400 and "you must choose at least one stream" in body["message"]


def test_clients(daemon, sdk):
    assert sdk.swarm.leave(force=True) is True     # the SDK tolerates 503 (it raised on 404)
    with pytest.raises(docker.errors.APIError) as e:
        sdk.swarm.leave()
    assert e.value.status_code == 503
    r = daemon.cli("node", "ls", check=False)
    assert r.returncode != 0 and "This node is not a swarm manager" in r.stderr_text
    r = daemon.cli("swarm", "init", check=False)
    assert r.returncode != 0 and "cannot be a swarm manager" in r.stderr_text
    assert daemon.out("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "inactive"
