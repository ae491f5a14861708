"""`--volumes-from` through the docker CLI, SDK and docker-compose, as dockerd 20.10
does it: volumes and binds of running and stopped containers, `:ro`/`:rw`, chains,
the container's own mounts winning, and `rm -v` keeping a shared anonymous volume."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

COMPOSE = shutil.which("docker-compose")


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _rm(daemon, *names: str) -> None:
    for n in names:
        daemon.cli("rm", "-f", n, check=False)


def _mounts(daemon, ref: str) -> dict[str, dict]:
    return {m["Destination"]: m for m in daemon.inspect(ref)["Mounts"]}


def test_volumes_from_stopped_and_chained(daemon, tmp_path):
    t = _tag()
    src, mid, end = f"vfs{t}", f"vfm{t}", f"vfe{t}"
    named = f"vfn{t}"
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "f").write_text("from-bind\n")
    try:
        daemon.cli("create", "--name", src, "-v", "/data", "-v", f"{named}:/named",
                   "-v", f"{bind}:/bind:ro", "--mount", f"type=bind,src={bind},dst=/bind2",
                   "busybox", "true")
        anon = _mounts(daemon, src)["/data"]["Name"]
        out = daemon.out("run", "--rm", "--volumes-from", src, "busybox", "sh", "-c",
                         "echo x > /data/a && echo y > /named/b && cat /bind/f && "
                         "touch /bind2/ok && ! touch /bind/no 2>/dev/null && echo rw-ok")
        assert out.split() == ["from-bind", "rw-ok"], out
        assert (bind / "ok").exists()
        # :ro makes everything read-only, and a chain passes the mounts on
        daemon.cli("create", "--name", mid, "--volumes-from", f"{src}:ro", "busybox", "true")
        m = _mounts(daemon, mid)
        assert set(m) == {"/data", "/named", "/bind", "/bind2"}
        assert m["/data"] == {**m["/data"], "Type": "volume", "Name": anon, "RW": False,
                              "Mode": ""}
        assert m["/bind2"] == {"Type": "bind", "Source": str(bind), "Destination": "/bind2",
                               "Mode": "", "RW": False, "Propagation": "rprivate"}
        assert daemon.inspect(mid)["HostConfig"]["VolumesFrom"] == [f"{src}:ro"]
        out = daemon.out("run", "--name", end, "--volumes-from", f"{mid}:rw", "busybox", "sh",
                         "-c", "cat /data/a /named/b; touch /data/c 2>/dev/null || echo ro")
        assert out.split() == ["x", "y", "ro"], out
        # the source's files: the same volume
        daemon.cli("rm", "-f", end)
    finally:
        _rm(daemon, end, mid, src)
        daemon.cli("volume", "rm", named, check=False)


def test_volumes_from_running_and_own_mounts_win(daemon):
    t = _tag()
    src, user = f"vfr{t}", f"vfu{t}"
    other = f"vfo{t}"
    try:
        daemon.cli("run", "-d", "--name", src, "-v", "/data", "-v", "/keep", "busybox",
                   "sh", "-c", "echo live > /data/f; sleep 300")
        daemon.cli("create", "--name", user, "--volumes-from", src, "-v", f"{other}:/data",
                   "busybox", "true")
        m = _mounts(daemon, user)
        assert m["/data"]["Name"] == other
        assert m["/keep"]["Name"] == _mounts(daemon, src)["/keep"]["Name"]
        daemon.cli("rm", user)
        out = daemon.out("run", "--rm", "--volumes-from", src, "busybox", "cat", "/data/f")
        assert out == "live\n"
    finally:
        _rm(daemon, user, src)
        daemon.cli("volume", "rm", other, check=False)


def test_volumes_from_errors(daemon):
    t = _tag()
    src = f"vfx{t}"
    try:
        daemon.cli("create", "--name", src, "-v", "/data", "busybox", "true")
        before = daemon.out("ps", "-aq").split()
        for arg, message in ((["nosuch"], "No such container: nosuch"),
                             ([f"{src}:xx"], "invalid mode: xx"),
                             ([f"{src}:nocopy"], "invalid mode: nocopy"),
                             ([f"{src}:ro,rw"], "invalid mode: ro,rw")):
            r = daemon.cli("create", "--volumes-from", *arg, "busybox", "true", check=False)
            assert r.returncode != 0 and message in r.stderr_text, (arg, r.stderr_text)
        assert daemon.out("ps", "-aq").split() == before
    finally:
        _rm(daemon, src)


def test_rm_v_keeps_shared_anonymous_volume(daemon):
    t = _tag()
    a1, a2 = f"vfa{t}", f"vfb{t}"
    try:
        daemon.cli("create", "--name", a1, "-v", "/anon", "busybox", "true")
        vol = _mounts(daemon, a1)["/anon"]["Name"]
        daemon.cli("create", "--name", a2, "--volumes-from", a1, "busybox", "true")
        daemon.cli("rm", "-v", a2)
        assert vol in daemon.out("volume", "ls", "-q").split()
        r = daemon.cli("volume", "rm", vol, check=False)
        assert r.returncode != 0 and "volume is in use" in r.stderr_text
        # the other way round: the source goes first, the user keeps it
        daemon.cli("create", "--name", a2, "--volumes-from", a1, "busybox", "true")
        daemon.cli("rm", "-v", a1)
        assert vol in daemon.out("volume", "ls", "-q").split()
        daemon.cli("rm", "-v", a2)
        assert vol not in daemon.out("volume", "ls", "-q").split()
    finally:
        _rm(daemon, a2, a1)


def test_volumes_from_sdk(sdk, daemon):
    t = _tag()
    src, user = f"vfk{t}", f"vfl{t}"
    try:
        sdk.containers.create("busybox", "true", name=src, volumes=["/vol"])
        out = sdk.containers.run("busybox", "sh -c 'echo sdk > /vol/f && cat /vol/f'",
                                 name=user, volumes_from=[f"{src}:rw"])
        assert out == b"sdk\n"
        c = sdk.containers.get(user)
        assert c.attrs["HostConfig"]["VolumesFrom"] == [f"{src}:rw"]
        assert c.attrs["Mounts"][0]["Destination"] == "/vol"
    finally:
        _rm(daemon, user, src)


COMPOSE_FILE = """\
version: "2.4"
services:
  data:
    image: busybox
    command: sh -c "echo shared > /srv/f; sleep 300"
    volumes: ["/srv"]
  reader:
    image: busybox
    depends_on: [data]
    volumes_from: ["data:ro"]
    command: sh -c "until [ -f /srv/f ]; do sleep 0.1; done; cat /srv/f; touch /srv/x 2>/dev/null || echo readonly"
"""


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed")
def test_compose_volumes_from(daemon, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    project = f"pdv{os.getpid()}"
    env = dict(os.environ, DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.base / "cli"))

    def compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([COMPOSE, "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    try:
        r = compose("up", "--abort-on-container-exit", "--exit-code-from", "reader")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "shared" in r.stdout and "readonly" in r.stdout, r.stdout
    finally:
        r = compose("down", "-v")
    assert r.returncode == 0, r.stderr
    assert not [n for n in daemon.out("volume", "ls", "-q").split() if n.startswith(project)]
