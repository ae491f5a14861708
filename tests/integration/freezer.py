"""Test cleanup for paused containers: a frozen process never dies, so a test that
fails with a container paused thaws it (behind the daemon's back) before the
daemon is stopped and the container removed, else the cleanup would hang."""
from __future__ import annotations

import glob
from pathlib import Path


def thaw(cid: str) -> None:
    """Thaw the cgroup of container `cid` wherever it is (cgroup v1's freezer
    hierarchy, or v2's cgroup.freeze); nothing when it is not frozen or gone."""
    files = glob.glob(f"/sys/fs/cgroup/freezer/**/*{cid}*/freezer.state", recursive=True)
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():        # a v2 host
        files += glob.glob(f"/sys/fs/cgroup/**/*{cid}*/cgroup.freeze", recursive=True)
    for f in files:
        try:
            Path(f).write_text("0" if f.endswith("cgroup.freeze") else "THAWED")
        except OSError:
            pass


def freeze_v1(cid: str) -> bool:
    """Freeze container `cid` through cgroup v1's freezer hierarchy behind its
    daemon's back; False when there is no such hierarchy (a v2 host). Wait for it
    with is_frozen_v1 (which writes FROZEN again: a cgroup may stay FREEZING)."""
    files = _states(cid)
    for f in files:
        Path(f).write_text("FROZEN")
    return bool(files)


def is_frozen_v1(cid: str) -> bool:
    """Whether it is FROZEN; a FREEZING one is asked to freeze again (the kernel
    retries only when asked: a task that was busy can leave it FREEZING)."""
    files = _states(cid)
    frozen = True
    for f in files:
        if Path(f).read_text().strip() != "FROZEN":
            frozen = False
            Path(f).write_text("FROZEN")
    return bool(files) and frozen


def _states(cid: str) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/freezer/**/*{cid}*/freezer.state", recursive=True)


__all__ = ["freeze_v1", "is_frozen_v1", "thaw"]
