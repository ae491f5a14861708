"""The classic builder (POST /build) through `DOCKER_BUILDKIT=0 docker build` and
the SDK: instructions, failures, multi-stage, .dockerignore, hostile contexts."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import DOCKER


@pytest.fixture(autouse=True, scope="module")
def _drop_built_images(daemon):
    """Built images are children of busybox: remove them so later tests of the
    session daemon (rmi conflicts) see busybox as they expect."""
    before = set(daemon.out("images", "-aq", "--no-trunc").split())
    yield
    for _ in range(20):
        extra = [i for i in daemon.out("images", "-aq", "--no-trunc").split()
                 if i not in before]
        if not extra:
            break
        for i in extra:
            daemon.cli("rmi", "-f", i, check=False)


def build(d, ctx: Path, *args: str, check: bool = True, input: bytes | None = None
          ) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.base / "cli"),
               DOCKER_BUILDKIT="0")
    env.pop("DOCKER_CONTEXT", None)
    r = subprocess.run([DOCKER, "build", *args, "-" if input is not None else str(ctx)],
                       input=input, capture_output=True, env=env, timeout=60)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    if check and r.returncode != 0:
        raise AssertionError(f"build failed ({r.returncode}):\n{out}\n{d.log_tail()}")
    r.text = out  # type: ignore[attr-defined]
    return r


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_build_instructions(daemon, tmp_path):
    (tmp_path / "hello.txt").write_text("hello from context\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("A\n")
    (tmp_path / "arch.tar").write_bytes(_tar_bytes({"x/inside.txt": b"from tar\n"}))
    (tmp_path / "Dockerfile").write_text(
        "# a comment\n"
        "FROM busybox\n"
        "ARG GREETING=hi\n"
        "ENV APP_HOME=/app \\\n"
        "    MSG=\"${GREETING} there\"\n"
        "WORKDIR $APP_HOME\n"
        "RUN echo built-by-run > run.txt && echo \"step output $GREETING\"\n"
        "COPY hello.txt sub ./\n"
        "COPY --chown=1000:1000 hello.txt /owned.txt\n"
        "ADD arch.tar /extracted/\n"
        "USER 1000\n"
        "LABEL com.example.k=\"v 1\"\n"
        "EXPOSE 8080/tcp 53/udp 7000-7001\n"
        "CMD [\"sh\", \"-c\", \"cat run.txt hello.txt a.txt /extracted/x/inside.txt; "
        "echo $MSG; pwd; id -u; stat -c %u /owned.txt\"]\n")
    r = build(daemon, tmp_path, "-t", "bt-app:1", "--build-arg", "GREETING=hey")
    assert "Step 1/12 : FROM busybox" in r.text
    assert "step output hey" in r.text
    assert "Removing intermediate container" in r.text
    assert "Successfully tagged bt-app:1" in r.text
    out = daemon.out("run", "--rm", "bt-app:1")
    assert out.split("\n") == ["built-by-run", "hello from context", "A", "from tar",
                               "hey there", "/app", "1000", "1000", ""]
    cfg = daemon.inspect("bt-app:1")["Config"]
    assert cfg["Labels"]["com.example.k"] == "v 1"
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp", "7000/tcp",
                                        "7001/tcp"}
    assert cfg["User"] == "1000" and cfg["WorkingDir"] == "/app"
    hist = daemon.out("history", "--no-trunc", "--format", "{{.CreatedBy}}", "bt-app:1")
    assert "echo built-by-run" in hist
    # same build again: every step from the cache, same image
    r2 = build(daemon, tmp_path, "-t", "bt-app:2", "--build-arg", "GREETING=hey")
    assert "Using cache" in r2.text
    assert daemon.inspect("bt-app:2")["Id"] == daemon.inspect("bt-app:1")["Id"]


def test_build_failing_run(daemon, tmp_path):
    before = set(daemon.out("ps", "-aq").split())
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo before\nRUN exit 3\n")
    r = build(daemon, tmp_path, "-t", "bt-fail", check=False)
    assert r.returncode != 0
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in r.text
    assert set(daemon.out("ps", "-aq").split()) == before
    assert daemon.cli("image", "inspect", "bt-fail", check=False).returncode != 0


def test_build_multistage_and_target(daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS builder\n"
        "RUN mkdir /out && echo compiled > /out/bin.txt\n"
        "FROM scratch AS files\n"
        "COPY --from=builder /out/bin.txt /bin.txt\n"
        "FROM busybox\n"
        "COPY --from=files /bin.txt /final/bin.txt\n"
        "COPY --from=0 /out /final/out\n"
        "CMD cat /final/bin.txt /final/out/bin.txt\n")
    build(daemon, tmp_path, "-t", "bt-multi")
    assert daemon.out("run", "--rm", "bt-multi") == "compiled\ncompiled\n"
    build(daemon, tmp_path, "-t", "bt-target", "--target", "builder")
    assert daemon.out("run", "--rm", "bt-target", "cat", "/out/bin.txt") == "compiled\n"
    assert daemon.cli("run", "--rm", "bt-target", "ls", "/final", check=False).returncode != 0
    r = build(daemon, tmp_path, "--target", "nope", check=False)
    assert r.returncode != 0 and "failed to reach build target nope" in r.text


def test_build_dockerignore(daemon, tmp_path):
    (tmp_path / "keep.txt").write_text("k")
    (tmp_path / "secret.key").write_text("s")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("l")
    (tmp_path / ".dockerignore").write_text("*.key\nlogs\n")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\nCMD ls -A /ctx\n")
    build(daemon, tmp_path, "-t", "bt-ignore")
    listed = daemon.out("run", "--rm", "bt-ignore").split()
    assert "keep.txt" in listed and "secret.key" not in listed and "logs" not in listed


def test_build_server_side_dockerignore(daemon, sdk):
    """A raw context tar (no client filtering): the daemon applies .dockerignore."""
    ctx = _tar_bytes({"Dockerfile": b"FROM busybox\nCOPY . /ctx/\nCMD ls -A /ctx\n",
                      ".dockerignore": b"*.key\n", "a.txt": b"a", "b.key": b"b"})
    img, _ = sdk.images.build(fileobj=io.BytesIO(ctx), custom_context=True, tag="bt-raw")
    out = sdk.containers.run("bt-raw", remove=True).decode().split()
    assert "a.txt" in out and "b.key" not in out


@pytest.mark.parametrize("entries", ["dotdot", "symlink"])
def test_build_hostile_context(daemon, tmp_path, entries):
    buf = io.BytesIO()
    target = tmp_path / "outside"
    target.mkdir()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        df = b"FROM busybox\nCOPY . /x/\n"
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(df)
        tar.addfile(ti, io.BytesIO(df))
        if entries == "dotdot":
            ti = tarfile.TarInfo("../evil")
            ti.size = 4
            tar.addfile(ti, io.BytesIO(b"evil"))
        else:
            ti = tarfile.TarInfo("link")
            ti.type = tarfile.SYMTYPE
            ti.linkname = str(target)
            tar.addfile(ti)
            ti = tarfile.TarInfo("link/evil")
            ti.size = 4
            tar.addfile(ti, io.BytesIO(b"evil"))
    r = build(daemon, tmp_path, check=False, input=buf.getvalue())
    assert r.returncode != 0
    assert "escapes" in r.text or "not a directory" in r.text, r.text
    assert not (target / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_build_sdk_and_prune(daemon, sdk, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nENV X=1\nRUN echo sdk-run\n")
    img, logs = sdk.images.build(path=str(tmp_path), tag="bt-sdk:latest", rm=True)
    assert "bt-sdk:latest" in img.tags
    assert any("sdk-run" in (m.get("stream") or "") for m in logs)
    assert "X=1" in img.attrs["Config"]["Env"]
    r = sdk.api.prune_builds()
    assert "SpaceReclaimed" in r


def test_build_missing_base_and_bad_dockerfile(daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM 127.0.0.1:1/nothing/here:1\n")
    r = build(daemon, tmp_path, check=False)
    assert r.returncode != 0 and "127.0.0.1:1" in r.text, r.text
    (tmp_path / "Dockerfile").write_text("FROM busybox\nFROBNICATE x\n")
    r = build(daemon, tmp_path, check=False)
    assert r.returncode != 0 and "unknown instruction" in r.text.lower()
    (tmp_path / "Dockerfile").write_text("FROM busybox\nADD http://127.0.0.1:1/x /x\n")
    r = build(daemon, tmp_path, check=False)
    assert r.returncode != 0 and "ADD failed" in r.text and "127.0.0.1:1" in r.text, r.text


def test_build_dockerfile_outside_context_quiet(daemon, tmp_path):
    """`-f` outside the context: the CLI appends it to the tar (without padding)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("outside-ok\n")
    (tmp_path / "other.Dockerfile").write_text(
        "FROM busybox\nCOPY f.txt /\nCOPY --chown=nobody f.txt /named.txt\n"
        "HEALTHCHECK --interval=5s CMD true\n"
        "ENTRYPOINT [\"cat\"]\nCMD [\"/f.txt\"]\n")
    r = build(daemon, ctx, "-q", "-t", "bt-outside", "-f", str(tmp_path / "other.Dockerfile"))
    assert r.stdout.decode().strip().startswith("sha256:")
    assert daemon.out("run", "--rm", "bt-outside") == "outside-ok\n"
    assert daemon.out("run", "--rm", "--entrypoint", "stat", "bt-outside", "-c", "%U",
                      "/named.txt") == "nobody\n"
    hc = daemon.inspect("bt-outside")["Config"]["Healthcheck"]
    assert hc == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}


def test_build_cancelled_by_client(daemon, tmp_path):
    """A client that goes away during a silent RUN: the build stops and its
    intermediate container goes (the daemon notices through keep-alives)."""
    env = dict(os.environ, DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.base / "cli"),
               DOCKER_BUILDKIT="0")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN sleep 30\n")
    before = set(daemon.out("ps", "-aq").split())
    p = subprocess.Popen([DOCKER, "build", str(tmp_path)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline and set(daemon.out("ps", "-q").split()) <= before:
            time.sleep(0.2)
        assert set(daemon.out("ps", "-q").split()) - before, "the RUN did not start"
    finally:
        p.kill()
        p.wait()
    deadline = time.time() + 10
    while time.time() < deadline and set(daemon.out("ps", "-aq").split()) != before:
        time.sleep(0.3)
    assert set(daemon.out("ps", "-aq").split()) == before
