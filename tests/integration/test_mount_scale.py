"""Start latency with many running containers (issue 10): `runc create` runs in a
mount namespace without the other containers' rootfs mounts (runc's work grows with
every mount it sees), and nothing of that namespace reaches the host: a running
container leaves exactly one mount there, its rootfs, which the host still sees."""
from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

from pydockerd.runtime.mountns import CROWDED


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _conmon_argv(d, ref: str) -> list[str]:
    """conmon's command line: the parent of the container's process."""
    pid = d.out("inspect", "-f", "{{.State.Pid}}", ref).strip()
    with open(f"/proc/{pid}/stat") as f:
        ppid = f.read().rsplit(")", 1)[1].split()[1]
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")


def _mounts_below(path: str) -> list[str]:
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]



def _runtime(d, ref: str) -> str:
    argv = _conmon_argv(d, ref)
    return os.path.basename(argv[argv.index("-r") + 1])


def test_create_runs_without_the_other_rootfs_mounts(fresh_daemon, shared_dir):
    d = fresh_daemon()
    a, b, c = _name("msa"), _name("msb"), _name("msc")
    crowd = [_name("mscrowd") for _ in range(CROWDED - 1)]
    containers = os.path.join(d.data_root, "containers")
    try:
        # few running: runc create runs in the host's namespace (nsenter would cost more)
        d.out("run", "-d", "--name", a, "busybox", "sleep", "300")
        assert _runtime(d, a) == "runc"
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: d.out("run", "-d", "--name", n, "busybox", "sleep", "300"),
                          crowd))
        # CROWDED running (a and the crowd): in a namespace of its own
        d.out("run", "-d", "--name", b, "busybox", "sleep", "300")
        argv = _conmon_argv(d, b)
        assert _runtime(d, b) == "nsenter"
        assert any(arg.startswith("--mount=/proc/") for arg in argv)
        # the host sees each running container's rootfs, and nothing else of ours
        ids = [d.out("inspect", "-f", "{{.Id}}", ref).strip() for ref in (a, b, *crowd)]
        below = _mounts_below(containers)
        assert sorted(below) == sorted(os.path.join(containers, i, "rootfs") for i in ids)
        assert not _mounts_below(d.exec_root)
        merged = d.out("inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", a).strip()
        assert os.path.isfile(os.path.join(merged, "bin", "busybox"))
        assert d.out("exec", a, "cat", "/proc/1/cmdline").startswith("sleep")
        # a shared bind needs its mount to be a peer of the host's: the host's namespace
        d.out("run", "-d", "--name", c, "-v", f"{shared_dir}:/x:rshared", "busybox",
              "sleep", "300")
        assert _runtime(d, c) == "runc"
        assert "shared" in d.out("exec", c, "grep", " /x ", "/proc/self/mountinfo")
    finally:
        d.cli("rm", "-f", a, b, c, *crowd, check=False)
