"""runtime/mountns.py and conmon's runtime arguments: which creates run in a namespace
of their own (none whose mounts must share events with the host), and how conmon is
told to run `runc create` there (nsenter before runc, every word a --runtime-arg)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pydockerd.runtime import conmon
from pydockerd.runtime.mountns import NSENTER, RuncNamespaces, propagates, to_detach


def _spec(*options: list[str], root_propagation: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"mounts": [{"destination": f"/m{i}", "type": "bind",
                                        "source": "/tmp", "options": opts}
                                       for i, opts in enumerate(options)], "linux": {}}
    if root_propagation:
        spec["linux"]["rootfsPropagation"] = root_propagation
    return spec


@pytest.mark.parametrize("options, root, expected", [
    ([["rbind", "rprivate"]], "", False),
    ([["nosuid", "noexec"], ["rbind", "ro"]], "", False),
    ([["rbind", "rshared"]], "", True),
    ([["bind", "slave"]], "", True),
    ([["rbind", "rslave"]], "", True),
    ([], "rshared", True),
    ([], "rprivate", False),
])
def test_propagates(options: list[list[str]], root: str, expected: bool) -> None:
    assert propagates(_spec(*options, root_propagation=root)) is expected


def _conmon_spec(mount_ns: str = "") -> conmon.ConmonSpec:
    return conmon.ConmonSpec(cid="c1", name="n", bundle="/b", persist_dir="/p",
                             exit_dir="/e", log_path="", tty=False, stdin=False,
                             runc="/usr/sbin/runc", runc_root="/r", mount_ns=mount_ns)


def test_conmon_runs_runc_directly_by_default() -> None:
    assert conmon._runtime_args(_conmon_spec()) == [
        "-r", "/usr/sbin/runc", "--runtime-arg", "--root", "--runtime-arg", "/r"]


def test_conmon_runs_runc_through_nsenter_in_a_namespace() -> None:
    ns = "/proc/1/task/2/ns/mnt"
    assert conmon._runtime_args(_conmon_spec(ns)) == [
        "-r", NSENTER, "--runtime-arg", f"--mount={ns}", "--runtime-arg", "/usr/sbin/runc",
        "--runtime-arg", "--root", "--runtime-arg", "/r"]


def test_no_namespace_unless_set_up_and_below_the_containers_dir() -> None:
    async def ns_for(ns: RuncNamespaces, rootfs: str) -> str | None:
        async with ns.for_create(rootfs, _spec()) as path:
            return path
    ns = RuncNamespaces("/data/containers", "/exec/rootfs-stage", "/exec/runc", ["runc"])
    assert asyncio.run(ns_for(ns, "/data/containers/c1/rootfs")) is None   # not set up
    ns.enabled = True
    assert asyncio.run(ns_for(ns, "/elsewhere/c1/rootfs")) is None


def test_verbs_namespace_keeps_only_what_runc_uses() -> None:
    mounts = [(1, 0, "/"), (2, 1, "/proc"), (3, 2, "/proc/sys/fs/binfmt_misc"),
              (4, 1, "/sys"), (5, 4, "/sys/fs/cgroup"), (6, 5, "/sys/fs/cgroup/cpu"),
              (7, 4, "/sys/kernel/tracing"), (8, 1, "/dev"), (9, 8, "/dev/shm"),
              (10, 9, "/dev/shm"), (11, 1, "/tmp/exec"), (12, 1, "/data/containers"),
              (13, 12, "/data/containers/a/rootfs"), (14, 1, "/mnt/usb"),
              (15, 14, "/mnt/usb/x")]
    needed = ["/tmp/exec/runc", "/usr/sbin/runc", "/proc/self", "/dev/null",
              "/sys/fs/cgroup"]
    assert to_detach(mounts, needed, ("/sys/fs/cgroup",)) == [
        "/dev/shm", "/data/containers", "/mnt/usb", "/sys/kernel/tracing",
        "/proc/sys/fs/binfmt_misc"]
