"""What a container's layer holds: `docker diff`, `docker commit` (dockerd's init
layer keeps the runtime's mount points out of both), and commit of a container
that exits while it is being paused."""
from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import uuid

from polling import wait_until


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_commit_of_a_container_that_exits_while_being_paused(daemon):
    """dockerd ignores the pause error: the commit still happens."""
    d = daemon
    c, img = _name("cpause"), _name("cpauseimg")
    d.cli("run", "-d", "--name", c, "busybox", "sh", "-c", "echo kept > /kept; sleep 300")
    pid = d.inspect(c)["State"]["Pid"]
    conmon = _ppid(pid)
    os.kill(conmon, signal.SIGSTOP)        # the exit stays unnoticed: still "running"
    try:
        wait_until(lambda: os.path.exists(f"/proc/{pid}/root/kept"), what="the file")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _proc_state(pid) in ("Z", "gone"), what="the process to end")
        assert d.inspect(c)["State"]["Status"] == "running"
        out = d.out("commit", c, img).strip()
        assert out.startswith("sha256:")
    finally:
        os.kill(conmon, signal.SIGCONT)
    try:
        wait_until(lambda: d.inspect(c)["State"]["Status"] == "exited", what="the exit")
        assert d.out("run", "--rm", img, "cat", "/kept") == "kept\n"
    finally:
        d.cli("rm", "-f", c, check=False)
        d.cli("rmi", img, check=False)


def _top_layer_names(d, image: str, tmp_path) -> set[str]:
    out = tmp_path / "img.tar"
    d.cli("save", "-o", str(out), image)
    with tarfile.open(out) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        layer = t.extractfile(manifest[0]["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as lt:
        return {m.name.rstrip("/") for m in lt}


def test_init_layer_keeps_runtime_mount_points_out_of_diff_and_commit(daemon, tmp_path):
    """As dockerd's `-init` layer: /etc/hosts & co., /proc, /sys, /dev/* and
    /.dockerenv are below the container's layer, so diff and commit show only what
    the container changed; its writes to /etc/hosts go to its hosts file."""
    d = daemon
    c, img = _name("cinit"), _name("cinitimg")
    d.cli("run", "-d", "--name", c, "busybox", "sh", "-c",
          "echo x > /etc/hosts; echo y > /etc/newf; sleep 300")
    try:
        wait_until(lambda: d.cli("exec", c, "cat", "/etc/newf", check=False).returncode == 0,
                   what="the container's file")
        assert d.out("diff", c).split("\n")[:-1] == ["C /etc", "A /etc/newf"]
        assert d.out("exec", c, "cat", "/etc/hosts") == "x\n"
        assert d.out("exec", c, "stat", "-c", "%s %a", "/.dockerenv") == "0 755\n"
        d.cli("commit", c, img)
        assert _top_layer_names(d, img, tmp_path) == {"etc", "etc/newf"}
        # a container of the committed image has a hosts file of its own
        assert d.out("run", "--rm", img, "cat", "/etc/newf") == "y\n"
        assert "x" != d.out("run", "--rm", img, "cat", "/etc/hosts").strip()
        # a container that changed nothing has an empty diff
        quiet = _name("cquiet")
        d.cli("run", "--name", quiet, "busybox", "true")
        try:
            assert d.out("diff", quiet) == ""
            # one init layer, shared by all containers and never written through:
            # the first container's own /etc/hosts write left it empty
            shared = os.path.join(d.data_root, "init-layer")
            for name in (c, quiet):
                cid = d.out("inspect", "-f", "{{.Id}}", name).strip()
                init = os.path.join(d.data_root, "containers", cid, "init")
                assert os.path.islink(init) and os.path.realpath(init) == shared
            assert sorted(os.listdir(shared)) == [".dockerenv", "dev", "etc", "proc", "sys"]
            assert os.path.getsize(os.path.join(shared, "etc", "hosts")) == 0
        finally:
            d.cli("rm", quiet)
    finally:
        d.cli("rm", "-f", c, check=False)
        d.cli("rmi", img, check=False)
