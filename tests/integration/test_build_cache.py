"""The classic builder's cache is the image store (as dockerd's): it survives a
daemon restart (also after SIGKILL), `docker builder prune` and `docker image
prune` leave it alone, a changed COPY source invalidates from that step on, and
it goes with the images (`docker rmi`)."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conftest import DOCKER
from polling import wait_until
from test_build import _drop_built_images, build  # noqa: F401 (autouse fixture)

DOCKERFILE = """FROM busybox
ENV APP=/app
WORKDIR /app
COPY src/ /app/src/
RUN cat /app/src/d1/f1.txt > /copied
LABEL cache=test
CMD ["cat", "/copied"]
"""
STEPS = 6                         # after FROM, which is never "Using cache"


def _context(d: Path) -> None:
    (d / "Dockerfile").write_text(DOCKERFILE)
    for i in range(40):
        sub = d / "src" / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"file {i}\n")


def _id(d, ref: str) -> str:
    return d.out("image", "inspect", "-f", "{{.Id}}", ref).strip()


def test_cache_survives_restart_and_prunes(fresh_daemon, tmp_path):
    d = fresh_daemon()
    _context(tmp_path)
    first = build(d, tmp_path, "-t", "bc-app:1")
    assert "Using cache" not in first.text, first.text
    built = _id(d, "bc-app:1")

    d.restart()
    r = build(d, tmp_path, "-t", "bc-app:2")
    assert r.text.count("Using cache") == STEPS, r.text
    assert _id(d, "bc-app:2") == built

    d.restart(signal.SIGKILL)
    memo = Path(d.data_root) / "builder" / "contexts.json"
    assert memo.is_file()
    memo.write_text("{not json")              # only a shortcut: the build still hits
    d.cli("builder", "prune", "-af")          # dockerd: only BuildKit's cache
    d.cli("image", "prune", "-f")             # the intermediates have children: kept
    r = build(d, tmp_path, "-t", "bc-app:3")
    assert r.text.count("Using cache") == STEPS, r.text
    assert _id(d, "bc-app:3") == built
    assert d.out("run", "--rm", "bc-app:3") == "file 1\n"

    # a changed file under the COPY source: ENV and WORKDIR cached, COPY on rebuilt
    (tmp_path / "src" / "d1" / "f1.txt").write_text("changed\n")
    r = build(d, tmp_path, "-t", "bc-app:4")
    assert r.text.count("Using cache") == 2, r.text
    assert _id(d, "bc-app:4") != built
    assert d.out("run", "--rm", "bc-app:4") == "changed\n"
    d.restart()
    r = build(d, tmp_path, "-t", "bc-app:5")
    assert r.text.count("Using cache") == STEPS and _id(d, "bc-app:5") == _id(d, "bc-app:4")

    # the cache goes with the images: rmi of every tag takes the untagged parents
    (tmp_path / "src" / "d1" / "f1.txt").write_text("file 1\n")
    d.cli("rmi", "bc-app:1", "bc-app:2", "bc-app:3")
    r = build(d, tmp_path, "-t", "bc-app:6")
    assert r.text.count("Using cache") == 2, r.text      # ENV, WORKDIR: bc-app:4's parents
    assert _id(d, "bc-app:6") != built


def test_cache_compares_the_config(fresh_daemon, tmp_path):
    """Same instruction text, other config (a LABEL from a build arg): no hit, as
    dockerd compares the step's whole config."""
    d = fresh_daemon()
    (tmp_path / "Dockerfile").write_text("FROM busybox\nARG V\nLABEL v=$V\n")
    build(d, tmp_path, "-t", "bc-label:a", "--build-arg", "V=a")
    r = build(d, tmp_path, "-t", "bc-label:b", "--build-arg", "V=b")
    assert d.inspect("bc-label:b")["Config"]["Labels"] == {"v": "b"}, r.text
    d.restart()
    r = build(d, tmp_path, "-t", "bc-label:c", "--build-arg", "V=a")
    assert r.text.count("Using cache") == 2, r.text
    assert _id(d, "bc-label:c") == _id(d, "bc-label:a")


def test_known_context_built_again(daemon, tmp_path):
    """The same context again (its files are extracted only when a step misses the
    cache): --no-cache and a build after rmi still copy the files, .dockerignore
    applied."""
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nCOPY . /ctx/\nRUN ls -a /ctx | sort > /list\nCMD cat /list\n")
    (tmp_path / ".dockerignore").write_text("secret*\n")
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "secret.txt").write_text("s\n")
    want = ".\n..\n.dockerignore\nDockerfile\na.txt\n"
    build(daemon, tmp_path, "-t", "bc-known:1")
    assert daemon.out("run", "--rm", "bc-known:1") == want
    r = build(daemon, tmp_path, "-t", "bc-known:2")
    assert r.text.count("Using cache") == 3, r.text
    r = build(daemon, tmp_path, "-t", "bc-known:3", "--no-cache")
    assert "Using cache" not in r.text, r.text
    assert daemon.out("run", "--rm", "bc-known:3") == want
    daemon.cli("rmi", "bc-known:1", "bc-known:2", "bc-known:3")
    r = build(daemon, tmp_path, "-t", "bc-known:4")
    assert "Using cache" not in r.text, r.text
    assert daemon.out("run", "--rm", "bc-known:4") == want
    daemon.cli("rmi", "bc-known:4")


def test_sigkill_mid_build_leaves_a_consistent_cache(fresh_daemon, tmp_path):
    """A daemon killed during a RUN step: after the restart the steps it finished
    come from the cache, the interrupted one runs again, the result is whole."""
    d = fresh_daemon()
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nENV A=1\nCOPY f.txt /f.txt\nARG T\nRUN sleep $T; cat /f.txt > /g\n"
        "CMD cat /g\n")
    (tmp_path / "f.txt").write_text("whole\n")
    env = dict(os.environ, DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.base / "cli"),
               DOCKER_BUILDKIT="0")
    env.pop("DOCKER_CONTEXT", None)
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        p = subprocess.Popen([DOCKER, "build", "--build-arg", "T=60", "-t", "bc-kill",
                              str(tmp_path)], stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: b"Running in" in out.read_bytes(), 60, what="the RUN step")
        d.restart(signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert d.cli("image", "inspect", "bc-kill", check=False).returncode != 0
    r = build(d, tmp_path, "--build-arg", "T=0", "-t", "bc-kill")
    assert r.text.count("Using cache") == 3, r.text          # ENV, COPY, ARG
    assert d.out("run", "--rm", "bc-kill") == "whole\n"
