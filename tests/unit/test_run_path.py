"""The run path: the cgroup attach lock warmer (runtime/cgwarm.py) writes while held,
and only then; conmon's command line."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

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


def test_own_cgroup_file_picks_v1_tasks_or_unified_threads(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lines = {"v1": "9:name=systemd:/a\n8:pids:/p/q\n4:memory:/m\n0::/u\n",
             "v2": "0::/svc/x\n"}
    import builtins
    real_open = builtins.open

    def fake_open(path: object, *a: object, **k: object) -> object:
        if path == "/proc/thread-self/cgroup":
            import io
            return io.StringIO(lines[mode])
        return real_open(path, *a, **k)     # type: ignore[call-overload]
    monkeypatch.setattr(builtins, "open", fake_open)
    mode = "v1"
    (tmp_path / "pids/p/q").mkdir(parents=True)
    (tmp_path / "pids/p/q/tasks").write_text("")
    (tmp_path / "memory/m").mkdir(parents=True)
    (tmp_path / "memory/m/tasks").write_text("")
    assert own_cgroup_file(str(tmp_path)) == str(tmp_path / "pids/p/q/tasks")
    (tmp_path / "pids/p/q/tasks").unlink()
    assert own_cgroup_file(str(tmp_path)) == str(tmp_path / "memory/m/tasks")
    mode = "v2"
    assert own_cgroup_file(str(tmp_path)) is None
    (tmp_path / "cgroup.controllers").write_text("")
    assert own_cgroup_file(str(tmp_path)) == str(tmp_path / "svc/x/cgroup.threads")


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
