"""The classic builder as dockerd 20.10 does it (each checked against Debian's dockerd
with DOCKER_BUILDKIT=0 docker build and raw POST /build): the first `dockerfile` wins,
a .dockerignore can drop the Dockerfile and itself, RUN stderr in red, the build
options applied to RUN containers, --cache-from."""
from __future__ import annotations

import http.client
import io
import json
import socket
import tarfile

import pytest

from test_build import _drop_built_images, build  # noqa: F401 (autouse fixture)


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def raw_build(d, query: str, files: dict[str, bytes]) -> tuple[int, bytes]:
    """POST /build with a hand-made query string (repeated parameters kept)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    conn = _UnixConn(d.socket)
    try:
        conn.request("POST", "/build?" + query, body=buf.getvalue(),
                     headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def messages(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_first_dockerfile_parameter_wins(daemon):
    status, body = raw_build(daemon, "dockerfile=Alt&dockerfile=Dockerfile&rm=1", {
        "Dockerfile": b"FROM busybox\nRUN echo from-default\n",
        "Alt": b"FROM busybox\nRUN echo from-alt\n"})
    text = "".join(m.get("stream", "") for m in messages(body))
    assert status == 200 and "from-alt" in text and "from-default" not in text, body


def test_dockerignore_can_exclude_dockerfile_and_itself(daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\nCMD ls -A /ctx\n")
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    (tmp_path / "keep.txt").write_text("k")
    build(daemon, tmp_path, "-t", "bf-ignore-df")
    assert daemon.out("run", "--rm", "bf-ignore-df").split() == ["keep.txt"]
    # not ignored: both stay in the context COPY sees
    (tmp_path / ".dockerignore").write_text("nothing-matches\n")
    build(daemon, tmp_path, "-t", "bf-ignore-df")
    assert sorted(daemon.out("run", "--rm", "bf-ignore-df").split()) == \
        [".dockerignore", "Dockerfile", "keep.txt"]


def test_run_stderr_is_red(daemon):
    status, body = raw_build(daemon, "nocache=1", {
        "Dockerfile": b"FROM busybox\nRUN echo out; echo err 1>&2; sleep 0.2; echo out2\n"})
    assert status == 200
    streams = [m["stream"] for m in messages(body) if "stream" in m]
    assert "\x1b[91merr\n\x1b[0m" in streams, streams
    assert "out\n" in streams and "out2\n" in streams
    assert b'"\\u001b[91merr\\n\\u001b[0m"' in body        # dockerd's exact JSON bytes


def test_run_containers_get_the_build_options(daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN cat /etc/hosts; ip -o addr | grep -v ' lo ' || true; "
        "df -k /dev/shm; echo nofile=$(ulimit -n):$(ulimit -Hn); "
        "cat /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/memory/memory.limit_in_bytes "
        "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares "
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us\n")
    r = build(daemon, tmp_path, "--no-cache", "--add-host", "foo.example:10.1.2.3",
              "--shm-size", "70m", "--ulimit", "nofile=1234:2345", "--cpuset-cpus", "0",
              "-m", "64m", "--memory-swap", "128m", "--cpu-shares", "512",
              "--cpu-quota", "50000", "--cpu-period", "100000", "--network", "none")
    out = r.text
    assert "10.1.2.3\tfoo.example" in out, out
    assert "inet " not in out, out                       # --network none: only lo
    assert "71680" in out, out                           # 70 MiB of /dev/shm, in KiB
    assert "nofile=1234:2345" in out, out
    lines = out.splitlines()
    for value in ("0", "67108864", "134217728", "512", "50000", "100000"):
        assert value in lines, (value, out)


@pytest.mark.parametrize("mode", ["user", "host", "missing"])
def test_run_network_mode(daemon, tmp_path, mode):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN ip -o -4 addr; hostname\n")
    if mode == "user":
        daemon.cli("network", "create", "--subnet", "10.233.41.0/24", "bf-net")
        try:
            r = build(daemon, tmp_path, "--no-cache", "--network", "bf-net")
        finally:
            daemon.cli("network", "rm", "bf-net", check=False)
        assert "inet 10.233.41." in r.text, r.text
    elif mode == "host":
        r = build(daemon, tmp_path, "--no-cache", "--network", "host")
        assert daemon.bridge in r.text, r.text           # the host's interfaces
    else:
        r = build(daemon, tmp_path, "--no-cache", "--network", "bf-nosuch", check=False)
        assert r.returncode != 0 and "bf-nosuch" in r.text and "not found" in r.text, r.text


def test_bad_build_options_are_400(daemon):
    status, body = raw_build(daemon, "ulimits=notjson", {"Dockerfile": b"FROM busybox\n"})
    assert status == 400, body
    status, body = raw_build(daemon, "memory=1000", {"Dockerfile": b"FROM busybox\n"})
    assert status == 400 and b"Minimum memory limit" in body, body


def _image_id(d, ref: str) -> str:
    return d.out("image", "inspect", "-f", "{{.Id}}", ref).strip()


def test_cache_from(daemon, sdk, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN head -c 16 /dev/urandom | od -x > /random\nLABEL bf=cache\n")
    build(daemon, tmp_path, "-t", "bf-cache-a")
    first = _image_id(daemon, "bf-cache-a")
    # a cachefrom image is an ancestor of the local hit: used
    sdk.api.prune_builds()
    r = build(daemon, tmp_path, "-t", "bf-cache-b", "--cache-from", "bf-cache-a")
    assert "Using cache" in r.text and _image_id(daemon, "bf-cache-b") == first, r.text
    # --cache-from an image that does not hold these steps: the local cache is not used
    r = build(daemon, tmp_path, "-t", "bf-cache-c", "--cache-from", "busybox")
    assert "Using cache" not in r.text and _image_id(daemon, "bf-cache-c") != first, r.text
    # an image without its parent chain (saved and loaded back, as if pulled)
    saved = tmp_path / "a.tar"
    daemon.cli("save", "-o", str(saved), "bf-cache-a")
    daemon.cli("rmi", "bf-cache-a", "bf-cache-b")
    daemon.cli("load", "-i", str(saved))
    assert _image_id(daemon, "bf-cache-a") == first
    sdk.api.prune_builds()
    r = build(daemon, tmp_path, "-t", "bf-cache-d", "--cache-from", "bf-cache-a")
    assert r.text.count("Using cache") == 2 and _image_id(daemon, "bf-cache-d") == first, \
        r.text
    random_a = daemon.out("run", "--rm", "bf-cache-a", "cat", "/random")
    assert daemon.out("run", "--rm", "bf-cache-d", "cat", "/random") == random_a
