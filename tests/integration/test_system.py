"""System endpoints and API conventions, through the CLI and raw HTTP."""
from __future__ import annotations

import http.client
import json
import socket


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def request(daemon, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = UnixHTTP(daemon.socket)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def test_ping_headers(daemon):
    status, headers, body = request(daemon, "GET", "/_ping")
    assert status == 200 and body == b"OK"
    assert headers["Api-Version"] == "1.50"
    assert headers["Ostype"] == "linux"
    assert headers["Docker-Experimental"] == "false"
    assert "Builder-Version" in headers
    status, headers, body = request(daemon, "HEAD", "/_ping")
    assert status == 200 and body == b""


def test_version_prefix_and_limits(daemon):
    status, _, body = request(daemon, "GET", "/v1.24/version")
    assert status == 200
    v = json.loads(body)
    assert v["ApiVersion"] == "1.50" and v["MinAPIVersion"] == "1.24"
    status, _, body = request(daemon, "GET", "/v1.99/version")
    assert status == 400
    assert "client version 1.99 is too new" in json.loads(body)["message"]
    status, _, body = request(daemon, "GET", "/v1.12/version")
    assert status == 400 and "too old" in json.loads(body)["message"]


def test_unknown_route_is_json_404(daemon):
    status, headers, body = request(daemon, "GET", "/nope/nothing")
    assert status == 404
    assert json.loads(body) == {"message": "page not found"}


def test_info_reports_real_values(daemon):
    info = json.loads(daemon.out("info", "--format", "{{json .}}"))
    assert info["Driver"] in ("overlay2", "vfs")
    assert info["DockerRootDir"] == daemon.data_root
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["CgroupDriver"] == "cgroupfs"
    assert info["OSType"] == "linux"
    assert "runc" in info["Runtimes"]
    assert any("seccomp" in s for s in info["SecurityOptions"])
    assert info["Images"] >= 2
    text = daemon.out("info")
    assert "Server Version" in text and "Storage Driver" in text


def test_malformed_json_is_400_and_daemon_survives(daemon):
    status, _, body = request(daemon, "POST", "/containers/create", b"{not json",
                              {"Content-Type": "application/json"})
    assert status == 400
    assert "invalid JSON" in json.loads(body)["message"]
    status, _, _ = request(daemon, "GET", "/_ping")
    assert status == 200


def test_bad_names_and_unknown_image(daemon):
    r = daemon.cli("create", "--name", "bad name!", "busybox", check=False)
    assert r.returncode != 0 and "Invalid container name" in r.stderr_text
    # a registry on a closed loopback port: the CLI's pull fails without leaving this host
    r = daemon.cli("create", "127.0.0.1:1/no-such-image:nope", check=False)
    assert r.returncode != 0
    assert "Unable to find image '127.0.0.1:1/no-such-image:nope' locally" in r.stderr_text
    assert "Error response from daemon" in r.stderr_text
    status, _, body = request(daemon, "POST", "/containers/create",
                              json.dumps({"Image": "no-such-image:nope"}).encode(),
                              {"Content-Type": "application/json"})
    assert status == 404 and "No such image" in json.loads(body)["message"]
    status, _, body = request(daemon, "GET", "/containers/doesnotexist/json")
    assert status == 404 and "No such container" in json.loads(body)["message"]
    assert daemon.cli("version").returncode == 0


def test_network_ls_shows_predefined(daemon):
    names = daemon.out("network", "ls", "--format", "{{.Name}}").split()
    assert sorted(names) == ["bridge", "host", "none"]


def test_events_stream_container_lifecycle(daemon):
    import subprocess
    import time
    since = str(time.time())
    daemon.cli("run", "--rm", "--name", "evtest", "busybox", "true")
    until = str(time.time() + 0.5)
    out = daemon.out("events", "--since", since, "--until", until, "--filter",
                     "container=evtest", "--format", "{{.Type}} {{.Action}}")
    actions = [line.split()[1] for line in out.splitlines()]
    for a in ("create", "start", "die", "destroy"):
        assert a in actions, out
    assert actions.index("create") < actions.index("start") < actions.index("die")
    del subprocess


def test_info_counts_every_image_as_dockerd(fresh_daemon, tmp_path, monkeypatch):
    """dockerd's Images is every image: tags of one image count once, a classic
    build's intermediate images count (probed: 1, 1, 4, then 5 after a commit)."""
    d = fresh_daemon()
    count = lambda: int(d.out("info", "--format", "{{.Images}}"))  # noqa: E731
    assert count() == 1
    d.cli("tag", "busybox", "a:1")
    d.cli("tag", "busybox", "b:2")
    assert count() == 1
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN echo a > /a\nENV X=1\nRUN echo b > /b\n")
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")                # the classic builder
    d.cli("build", "-q", "-t", "multi", str(tmp_path), timeout=120)
    assert len(d.out("images", "-q").split()) == 4          # busybox x3 + multi
    assert count() == 4
    d.cli("run", "--name", "cnt", "busybox", "touch", "/x")
    d.cli("commit", "cnt", "cnt-img")
    assert count() == 5


def test_info_counts_containers_by_state(fresh_daemon):
    """Containers, ContainersRunning/Paused/Stopped (dockerd's stateCounter: a
    restarting, created or exited one is stopped) follow every verb and a restart."""
    d = fresh_daemon()

    def counts() -> list[int]:
        out = d.out("info", "--format", "{{.Containers}} {{.ContainersRunning}} "
                    "{{.ContainersPaused}} {{.ContainersStopped}}")
        return [int(n) for n in out.split()]
    assert counts() == [0, 0, 0, 0]
    d.cli("create", "--name", "i-created", "busybox", "true")
    d.cli("run", "-d", "--name", "i-run", "busybox", "sleep", "300")
    d.cli("run", "-d", "--name", "i-paused", "busybox", "sleep", "300")
    d.cli("pause", "i-paused")
    d.cli("run", "--name", "i-exited", "busybox", "true")
    d.cli("run", "-d", "--name", "i-restarting", "--restart", "always", "busybox", "false")
    assert counts() in ([5, 2, 1, 2], [5, 1, 1, 3])   # i-restarting: running or not
    d.cli("update", "--restart", "no", "i-restarting")
    d.cli("stop", "-t", "0", "i-restarting")
    assert counts() == [5, 1, 1, 3]
    d.cli("unpause", "i-paused")
    assert counts() == [5, 2, 0, 3]
    d.cli("kill", "i-run")
    assert counts() == [5, 1, 0, 4]
    d.cli("rm", "-f", "i-paused", "i-created")
    assert counts() == [3, 0, 0, 3]
    d.cli("start", "i-run")
    d.restart()                         # no live-restore: the running one is stopped
    assert counts() == [3, 0, 0, 3]
