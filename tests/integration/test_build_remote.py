"""Remote build contexts (`remote=`: a tarball, a plain Dockerfile, a git repository)
and `ADD <url>`, against an HTTP server on 127.0.0.1, as dockerd 20.10 does them."""
from __future__ import annotations

import functools
import http.server
import io
import os
import re
import subprocess
import tarfile
import threading
from pathlib import Path

import docker.errors
import pytest

from test_build import _drop_built_images, build  # noqa: F401 (autouse fixture)

LAST_MODIFIED = 981173106          # 2001-02-03 04:05:06 UTC


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        p = str(path)
        if p.endswith(".txt") or p.endswith("Dockerfile"):
            return "text/plain"
        if p.endswith(".html"):
            return "text/html"
        return "application/octet-stream"


def _tar(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@e", "-c", "user.name=t", *args], cwd=cwd,
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A loopback HTTP server: ctx.tar.gz, a plain Dockerfile, a git repository
    (dumb HTTP), files for ADD."""
    root = tmp_path_factory.mktemp("http")
    (root / "ctx.tar.gz").write_bytes(_tar({
        "Dockerfile": b"FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n",
        "hello.txt": b"hello from a tarball\n"}, "w:gz"))
    (root / "Dockerfile").write_text("FROM busybox\nRUN echo plain dockerfile\n")
    (root / "page.html").write_text("<html></html>")
    work = root / "work"
    (work / "sub").mkdir(parents=True)
    (work / "Dockerfile").write_text("FROM busybox\nCOPY g.txt /g.txt\nRUN cat /g.txt\n")
    (work / "g.txt").write_text("from the git root\n")
    (work / "sub" / "Dockerfile").write_text("FROM busybox\nCOPY s.txt /s.txt\n"
                                             "RUN cat /s.txt\n")
    (work / "sub" / "s.txt").write_text("from the git subdir\n")
    _git(work, "init", "-q", "-b", "master")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "init")
    _git(work, "tag", "v1")
    _git(root, "clone", "-q", "--bare", str(work), "repo.git")
    _git(root / "repo.git", "update-server-info")
    (root / "p").mkdir()
    (root / "p" / "file.txt").write_text("payload\n")
    os.utime(root / "p" / "file.txt", (LAST_MODIFIED, LAST_MODIFIED))
    (root / "p" / "arch.tar").write_bytes(_tar({"inner.txt": b"inner\n"}))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _sdk_build(sdk, remote: str, **kw) -> str:
    """images.build(path=<URL>) sends it as `remote`; the build's text output."""
    _, logs = sdk.images.build(path=remote, rm=True, nocache=True, **kw)
    return "".join(m.get("stream", "") for m in logs)


@pytest.mark.parametrize("kind", ["tarball", "dockerfile", "git", "git-subdir", "git-tag"])
def test_remote_context(daemon, sdk, server, kind):
    _, base = server
    url, expected = {
        "tarball": (f"{base}/ctx.tar.gz", "hello from a tarball"),
        "dockerfile": (f"{base}/Dockerfile", "plain dockerfile"),
        "git": (f"{base}/repo.git", "from the git root"),
        "git-subdir": (f"{base}/repo.git#master:sub", "from the git subdir"),
        "git-tag": (f"{base}/repo.git#v1", "from the git root"),
    }[kind]
    assert expected in _sdk_build(sdk, url)


@pytest.mark.parametrize("case", ["404", "not-a-url", "html", "no-ref", "no-dockerfile"])
def test_remote_context_errors(daemon, sdk, server, case):
    _, base = server
    url, words = {
        "404": (f"{base}/nothere.tar", "failed to GET"),
        "not-a-url": ("ftp://127.0.0.1/x", "could not be recognized as URL"),
        "html": (f"{base}/page.html", "unsupported Content-Type"),
        "no-ref": (f"{base}/repo.git#nosuch", "couldn't find remote ref nosuch"),
        "no-dockerfile": (f"{base}/ctx.tar.gz", "Cannot locate specified Dockerfile: nope"),
    }[case]
    if case == "not-a-url":                      # the SDK sends only URLs it knows
        resp = sdk.api._post(sdk.api._url("/build"), params={"remote": url})
        assert resp.status_code == 400 and words in resp.json()["message"], resp.text
        return
    extra = {"dockerfile": "nope"} if case == "no-dockerfile" else {}
    with pytest.raises((docker.errors.BuildError, docker.errors.APIError)) as e:
        _sdk_build(sdk, url, **extra)
    assert words in str(e.value), str(e.value)


def test_add_url(daemon, server, tmp_path):
    root, base = server
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nADD {base}/p/arch.tar /d/\nADD {base}/p/file.txt /d/\n"
        f"ADD --chown=5:6 {base}/p/file.txt /named\n"
        "RUN ls -ln --full-time /d /named && cat /d/file.txt\n")
    r = build(daemon, tmp_path, "-t", "br-add")
    out = r.text
    # not extracted, 0600, mtime from Last-Modified, --chown applied
    assert re.search(r"-rw------- +1 0 +0 +8 2001-02-03 04:05:06 \+0000 file\.txt", out), out
    assert re.search(r"-rw------- +1 0 +0 +10240 .* arch\.tar", out), out
    assert "inner.txt" not in out, out
    assert re.search(r"-rw------- +1 5 +6 +8 2001-02-03 04:05:06 \+0000 /named", out), out
    history = daemon.out("history", "--no-trunc", "--format", "{{.CreatedBy}}", "br-add")
    assert any(line.startswith("/bin/sh -c #(nop) ADD ") and line.endswith(" in /named")
               and ":" not in line.split()[4] for line in history.splitlines()), history
    # the cache follows the content: same bytes hit, changed bytes miss
    r = build(daemon, tmp_path, "-t", "br-add")
    assert r.text.count("Using cache") == 4, r.text
    (root / "p" / "file.txt").write_text("changed\n")
    try:
        r = build(daemon, tmp_path, "-t", "br-add")
        assert r.text.count("Using cache") == 1 and "changed" in r.text, r.text
    finally:
        (root / "p" / "file.txt").write_text("payload\n")
        os.utime(root / "p" / "file.txt", (LAST_MODIFIED, LAST_MODIFIED))


def test_add_url_errors(daemon, server, tmp_path):
    _, base = server
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nADD {base}/p/missing /d/\n")
    r = build(daemon, tmp_path, check=False)
    assert r.returncode != 0 and "ADD failed: failed to GET" in r.text \
        and "404" in r.text, r.text
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nADD {base}/p/ /d/\n")
    r = build(daemon, tmp_path, check=False)
    assert r.returncode != 0 and "cannot determine filename" in r.text, r.text
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nCOPY {base}/p/file.txt /d/\n")
    r = build(daemon, tmp_path, check=False)
    assert r.returncode != 0 and "source can't be a URL for COPY" in r.text, r.text
