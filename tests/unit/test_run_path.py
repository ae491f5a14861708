"""The run path: the cgroup attach lock warmer (runtime/cgwarm.py) writes while held,
and only then; conmon's command line."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from pydockerd.runtime.cgroupmounts import (UNIFIED, CgroupMounts, host_cgroup_mounts,
                                            parse_proc_cgroup)
from pydockerd.runtime.cgwarm import CgroupLockWarmer, own_cgroup_file


def _until(cond: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return True
        time.sleep(0.002)
    return False


@pytest.mark.timeout(30)
def test_writes_its_own_tid_while_held_and_stops_after(tmp_path: Path) -> None:
    target = tmp_path / "tasks"
    target.write_text("")
    w = CgroupLockWarmer(lambda: str(target), period=0.001)
    assert w.writes == 0
    with w.held():
        assert _until(lambda: w.writes >= 3)
    tid = target.read_text()
    assert tid.isdigit() and int(tid) != threading.get_native_id()   # the warmer's thread
    time.sleep(0.02)
    after = w.writes
    time.sleep(0.05)
    assert w.writes <= after + 1          # idle once released
    with w.held(), w.held():              # nested holders: one thread, writes again
        assert _until(lambda: w.writes >= after + 3)
    assert not w.disabled


@pytest.mark.timeout(30)
def test_turns_itself_off_when_it_cannot_write(tmp_path: Path) -> None:
    w = CgroupLockWarmer(lambda: str(tmp_path / "missing" / "tasks"), period=0.001)
    with w.held():
        assert _until(lambda: w.disabled)
    with w.held():                         # a no-op from now on
        pass
    assert w.writes == 0
    none = CgroupLockWarmer(lambda: None, period=0.001)
    with none.held():
        assert _until(lambda: none.disabled)


def _mountinfo(root: Path, unified: str = "unified") -> str:
    """A hybrid host's cgroup mounts, under `root` instead of /sys/fs/cgroup."""
    return "\n".join([
        f"31 23 0:28 / {root} rw,relatime - tmpfs tmpfs rw,mode=755",
        f"32 31 0:29 / {root}/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct",
        f"35 31 0:32 / {root}/mem rw,relatime - cgroup cgroup rw,memory",
        f"39 31 0:36 / {root}/p\\040ids rw,relatime - cgroup cgroup rw,pids",
        f"40 31 0:37 / {root}/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd",
        f"41 31 0:38 / {root}/{unified} rw,relatime - cgroup2 cgroup2 rw,nsdelegate",
        # a sub-cgroup mounted elsewhere (a container's view): not the hierarchy's root
        f"50 23 0:36 /docker/x {root}/elsewhere rw - cgroup cgroup rw,pids", ""])


def test_cgroup_mounts_come_from_mountinfo(tmp_path: Path) -> None:
    m = CgroupMounts.parse(_mountinfo(tmp_path / "cg"))
    cg = str(tmp_path / "cg")
    assert m.mount_of("pids") == f"{cg}/p ids"                  # \040 unescaped
    assert m.mount_of("cpu,cpuacct") == m.mount_of("cpuacct,cpu") == f"{cg}/cpu,cpuacct"
    assert m.mount_of("cpuacct") == f"{cg}/cpu,cpuacct"
    assert m.mount_of("memory") == f"{cg}/mem" and m.mount_of("blkio") is None
    assert m.mount_of("name=systemd") == f"{cg}/systemd"
    assert m.has_unified and m.directory(UNIFIED, "/a/b") == f"{cg}/unified/a/b"
    assert not CgroupMounts.parse("").has_unified
    assert parse_proc_cgroup("9:name=systemd:/a\n0::/u:v\n") == [("name=systemd", "/a"),
                                                                 ("", "/u:v")]


def test_own_cgroup_file_picks_v1_tasks_or_unified_threads_where_mounted(
        tmp_path: Path) -> None:
    """Hierarchies mounted somewhere else than /sys/fs/cgroup are found (mountinfo
    decides, nothing is assumed); no root needed: fake mountinfo and cgroup texts."""
    cg = tmp_path / "cg"
    mounts = CgroupMounts.parse(_mountinfo(cg))
    v1 = "9:name=systemd:/a\n8:pids:/p/q\n4:memory:/m\n1:cpu,cpuacct:/c\n0::/u\n"
    (cg / "p ids/p/q").mkdir(parents=True)
    (cg / "p ids/p/q/tasks").write_text("")
    (cg / "mem/m").mkdir(parents=True)
    (cg / "mem/m/tasks").write_text("")
    (cg / "unified/u").mkdir(parents=True)
    (cg / "unified/u/cgroup.threads").write_text("")
    assert own_cgroup_file(mounts, v1) == str(cg / "p ids/p/q/tasks")        # pids first
    (cg / "p ids/p/q/tasks").unlink()
    assert own_cgroup_file(mounts, v1) == str(cg / "mem/m/tasks")
    (cg / "mem/m/tasks").unlink()
    assert own_cgroup_file(mounts, v1) == str(cg / "unified/u/cgroup.threads")
    # a v2 host: the unified hierarchy mounted on its own, elsewhere
    v2 = CgroupMounts.parse(f"30 23 0:27 / {tmp_path}/v2 rw - cgroup2 cgroup2 rw\n")
    assert own_cgroup_file(v2, "0::/svc/x\n") is None              # no such cgroup
    (tmp_path / "v2/svc/x").mkdir(parents=True)
    (tmp_path / "v2/svc/x/cgroup.threads").write_text("")
    assert own_cgroup_file(v2, "0::/svc/x\n") == str(tmp_path / "v2/svc/x/cgroup.threads")
    assert own_cgroup_file(CgroupMounts.parse(""), v1) is None        # nothing mounted


def test_own_cgroup_file_on_this_host() -> None:
    """The host's own hierarchies resolve to a file that exists (the warmer engages),
    wherever they are mounted."""
    if not host_cgroup_mounts().points:
        pytest.skip("no cgroup hierarchy mounted here")
    path = own_cgroup_file()
    assert path is not None and os.path.exists(path), host_cgroup_mounts()
    assert path.endswith(("/tasks", "/cgroup.threads"))


@pytest.mark.timeout(30)
def test_a_hold_counts_for_max_hold_only(tmp_path: Path) -> None:
    target = tmp_path / "tasks"
    target.write_text("")
    w = CgroupLockWarmer(lambda: str(target), period=0.001, max_hold=0.05)
    with w.held():
        time.sleep(0.1)                   # a start that hangs
        stalled = w.writes
        time.sleep(0.05)
        assert 1 <= stalled and w.writes <= stalled + 1
        with w.held():                    # another start: warm again
            assert _until(lambda: w.writes >= stalled + 3)


def test_conmon_does_not_fsync_the_spool_at_exit() -> None:
    """run path: conmon's exit (what the exit monitor waits for) does not wait for an
    fsync of the spool under the exec root."""
    from pydockerd.runtime.conmon import ConmonSpec, conmon_argv
    spec = ConmonSpec(cid="c" * 64, name="n", bundle="/run/x/c", persist_dir="/d/c",
                      exit_dir="/run/x/exits", log_path="/run/x/c/log-1.spool", tty=False,
                      stdin=False, runc="/usr/sbin/runc", runc_root="/run/x/runc")
    argv = conmon_argv(spec)
    assert "--no-sync-log" in argv
    assert argv[argv.index("-l") + 1] == "k8s-file:/run/x/c/log-1.spool"


def test_cgroup_mounts_of_a_sub_cgroup_map_paths_relative_to_their_root() -> None:
    """A daemon in a container with the host's cgroup namespace (cgroup v1) sees
    binds of its own cgroup (/docker/<id>) as the hierarchies' mounts, and the
    host's paths in /proc/<pid>/cgroup: a path maps to the mount point plus its path
    relative to the mount's root, as libcontainer does."""
    m = CgroupMounts.parse("\n".join([
        "600 590 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup "
        "rw,cpu,cpuacct",
        "601 590 0:36 /docker/abc /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids",
        "602 590 0:37 /docker/abc /sys/fs/cgroup/systemd ro - cgroup cgroup "
        "rw,xattr,name=systemd",
        "603 590 0:33 /docker/abc /sys/fs/cgroup/cpuset ro - cgroup cgroup "
        "rw,noprefix,clone_children,release_agent=/x,cpuset", ""]))
    assert m.directory("pids", "/docker/abc/pydockerd/c1") == "/sys/fs/cgroup/pids/pydockerd/c1"
    assert m.directory("cpu,cpuacct", "/docker/abc") == "/sys/fs/cgroup/cpu,cpuacct"
    assert m.directory("pids", "/docker/abcd/x") is None       # not below the root
    assert m.directory("pids", "/other") is None
    assert m.directory("name=systemd", "/docker/abc/s") == "/sys/fs/cgroup/systemd/s"
    # flags that name no controller are no hierarchy's name
    assert set(m.mounts) == {"cpu,cpuacct", "cpu", "cpuacct", "pids", "name=systemd",
                             "cpuset"}
    assert m.directory("cpuset", "/docker/abc/p") == "/sys/fs/cgroup/cpuset/p"


def test_a_mount_of_the_hierarchys_root_wins_over_one_of_a_sub_cgroup(tmp_path: Path) -> None:
    cg = str(tmp_path / "cg")
    m = CgroupMounts.parse(_mountinfo(tmp_path / "cg"))     # its sub-cgroup mount is last
    assert m.directory("pids", "/docker/x/y") == f"{cg}/p ids/docker/x/y"
    first_sub = CgroupMounts.parse(
        f"50 23 0:36 /docker/x {cg}/elsewhere rw - cgroup cgroup rw,pids\n"
        f"39 31 0:36 / {cg}/pids rw - cgroup cgroup rw,pids\n")
    assert first_sub.mount_of("pids") == f"{cg}/pids"
    assert first_sub.directory("pids", "/a") == f"{cg}/pids/a"
    v2 = CgroupMounts.parse("30 23 0:27 /ns\\040x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert v2.directory(UNIFIED, "/ns x/svc") == "/sys/fs/cgroup/svc"
