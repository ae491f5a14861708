"""runtime/destroy.py: runc's delete of a stopped container done in-process, on a
fake runc state (cgroups are plain directories here), and what it leaves to runc."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.runtime.destroy import destroy_stopped


def own_start_time() -> int:
    with open(f"/proc/{os.getpid()}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def make_state(tmp: Path, **changes: Any) -> tuple[Path, list[Path]]:
    cgroups = [tmp / "cg" / "memory" / "c1", tmp / "cg" / "cpu" / "c1"]
    for cg in cgroups:
        (cg / "sub").mkdir(parents=True)            # a sub-cgroup: removed first
    state_dir = tmp / "runc" / "c1"
    state_dir.mkdir(parents=True)
    cfg: dict[str, Any] = {"namespaces": [{"type": "NEWNS", "path": ""},
                                          {"type": "NEWPID", "path": ""}],
                           "cgroups": {"Systemd": False, "Rootless": False},
                           "Hooks": None}
    state: dict[str, Any] = {"init_process_pid": 2 ** 22 + 7, "init_process_start": 1,
                             "config": cfg, "rootless": False, "intel_rdt_path": "",
                             "cgroup_paths": {"memory": str(cgroups[0]),
                                              "cpu": str(cgroups[1]),
                                              "cpuacct": str(cgroups[1])}}
    for key, value in changes.items():
        if key in cfg:
            cfg[key] = value
        else:
            state[key] = value
    (state_dir / "state.json").write_text(json.dumps(state))
    return state_dir, cgroups


def test_stopped_container_is_destroyed(tmp_path: Path) -> None:
    state_dir, cgroups = make_state(tmp_path)
    assert destroy_stopped(str(state_dir))
    assert not state_dir.exists()
    assert not any(cg.exists() for cg in cgroups)


def test_gone_is_done(tmp_path: Path) -> None:
    assert destroy_stopped(str(tmp_path / "runc" / "never"))
    aborted = tmp_path / "runc" / "aborted"         # a create that wrote no state
    aborted.mkdir(parents=True)
    assert destroy_stopped(str(aborted)) and not aborted.exists()


@pytest.mark.parametrize("changes", [
    {"Hooks": {"poststop": [{"path": "/bin/true"}]}},
    {"namespaces": [{"type": "NEWPID", "path": "/proc/1/ns/pid"}]},   # --pid host/container
    {"namespaces": [{"type": "NEWNS", "path": ""}]},
    {"cgroups": {"Systemd": True}},
    {"intel_rdt_path": "/sys/fs/resctrl/c1"},
    {"init_process_pid": os.getpid(), "init_process_start": own_start_time()},   # alive
], ids=["hooks", "shared-pidns", "host-pidns", "systemd", "rdt", "alive"])
def test_left_to_runc(tmp_path: Path, changes: dict[str, Any]) -> None:
    state_dir, cgroups = make_state(tmp_path, **changes)
    assert not destroy_stopped(str(state_dir))
    assert (state_dir / "state.json").exists()
    assert all(cg.exists() for cg in cgroups)


def test_reused_pid_is_not_the_init(tmp_path: Path) -> None:
    state_dir, _ = make_state(tmp_path, init_process_pid=os.getpid(),
                              init_process_start=own_start_time() + 1)
    assert destroy_stopped(str(state_dir))


def test_busy_cgroup_is_left_to_runc(tmp_path: Path) -> None:
    state_dir, cgroups = make_state(tmp_path)
    (cgroups[1] / "cgroup.procs").write_text("42\n")     # rmdir fails: not empty
    assert not destroy_stopped(str(state_dir))
    assert (state_dir / "state.json").exists()


def test_a_state_dir_that_cannot_be_removed_is_handed_back(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError removing the state dir (after the cgroups went) is neither raised (it
    would fail the exit's recording) nor taken for done: `runc delete` removes the rest."""
    import errno
    import shutil

    from pydockerd.runtime import destroy
    state_dir, cgroups = make_state(tmp_path)
    real = shutil.rmtree

    def failing(path: str, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("ignore_errors"):
            return real(path, *args, **kwargs)
        raise OSError(errno.EBUSY, "Device or resource busy", path)
    monkeypatch.setattr(destroy.shutil, "rmtree", failing)
    assert not destroy_stopped(str(state_dir))
    assert (state_dir / "state.json").exists()
    monkeypatch.setattr(destroy.shutil, "rmtree", real)
    assert destroy_stopped(str(state_dir))          # runc's turn, or the next try: idempotent
    assert not state_dir.exists() and not any(cg.exists() for cg in cgroups)
