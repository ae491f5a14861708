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
