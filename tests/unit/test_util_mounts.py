"""util/mounts.is_mountpoint: the statx answer (one syscall) agrees with the
mountinfo scan it replaces, and the scan is still there where statx says nothing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pydockerd.util import mounts


def _mount_points() -> list[str]:
    """The host's lasting mount points (not /tmp, /run...: tests and daemons of other
    sessions mount and unmount there all the time)."""
    stable = ("/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/sys/fs/cgroup")
    with open("/proc/self/mountinfo") as f:
        points = {mounts.unescape_mountinfo(line.split(" ")[4]) for line in f}
    return [p for p in stable if p in points]


def test_statx_reports_mount_roots() -> None:
    if mounts._statx_mount_root("/") is None:
        pytest.skip("this kernel does not report STATX_ATTR_MOUNT_ROOT")
    assert mounts.is_mountpoint("/") and mounts.is_mountpoint("/proc")


@pytest.mark.parametrize("fast", [True, False], ids=["statx", "mountinfo"])
def test_both_ways_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    if not fast:
        monkeypatch.setattr(mounts, "_libc", None)
    for point in _mount_points():
        assert mounts.is_mountpoint(point), point
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("")
    os.symlink("/proc", tmp_path / "to-proc")
    assert not mounts.is_mountpoint(str(tmp_path / "d"))
    assert not mounts.is_mountpoint(str(tmp_path / "f"))
    assert not mounts.is_mountpoint(str(tmp_path / "missing"))
    assert mounts.is_mountpoint(str(tmp_path / "to-proc"))     # symlinks are resolved
