"""pidwatch.kill_tree: every process of the tree is stopped before its children are
read and killed in the end, even when the scan fails."""
from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pydockerd.runtime import pidwatch
from pydockerd.util import procfs

# P forks C, C forks G; each writes its pid to the file given, then sleeps
_TREE = r'''
import os, sys, time
out = sys.argv[1]
if os.fork() == 0:
    if os.fork() == 0:
        open(out + ".g", "w").write(str(os.getpid()))
        time.sleep(60); os._exit(0)
    open(out + ".c", "w").write(str(os.getpid()))
    time.sleep(60); os._exit(0)
time.sleep(60)
'''


def _state(pid: int) -> str:
    fields = procfs.stat_fields(pid)
    return fields[0] if fields else "gone"


def _stopping(pid: int) -> str:
    """"T" when `pid` is stopped or has a SIGSTOP pending (it forks no more)."""
    if _state(pid) == "T":
        return "T"
    with open(f"/proc/{pid}/status") as f:
        pending = [int(line.split()[1], 16) for line in f
                   if line.startswith(("SigPnd:", "ShdPnd:"))]
    return "T" if any(mask & (1 << (signal.SIGSTOP - 1)) for mask in pending) else "running"


def _wait_for(pred, what: str, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def _start_tree(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    out = tmp_path / "pid"
    p = subprocess.Popen([sys.executable, "-c", _TREE, str(out)])
    c_file, g_file = Path(f"{out}.c"), Path(f"{out}.g")
    _wait_for(lambda: c_file.exists() and g_file.exists()
              and c_file.read_text() and g_file.read_text(), "the tree never started")
    return p, int(c_file.read_text()), int(g_file.read_text())


def _cleanup(p: subprocess.Popen[bytes], *pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.kill()
    p.wait()


def test_each_member_is_stopped_before_its_children_are_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p, c, g = _start_tree(tmp_path)
    real = procfs.children
    states: dict[int, str] = {}

    def children(pid: int | str, strict: bool = False) -> set[int]:
        deadline = time.monotonic() + 1     # a SIGSTOP being delivered shows neither
        while _stopping(int(pid)) != "T" and time.monotonic() < deadline:
            time.sleep(0.005)
        states.setdefault(int(pid), _stopping(int(pid)))
        return real(pid, strict)
    monkeypatch.setattr(pidwatch, "children", children)
    fds: list[int] = []
    try:
        fds = pidwatch.kill_tree(p.pid)
        assert [_pidfd_pid(fd) for fd in fds] == [c, g]
        assert states == {p.pid: "T", c: "T", g: "T"}, "read before the SIGSTOP"
        assert p.wait(timeout=10) == -signal.SIGKILL
        _wait_for(lambda: _state(c) in ("Z", "gone") and _state(g) in ("Z", "gone"),
                  "a descendant was not killed")
    finally:
        for fd in fds:
            os.close(fd)
        _cleanup(p, c, g)


def _pidfd_pid(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return int(next(line.split()[1] for line in f if line.startswith("Pid:")))


def test_a_failing_pidfd_open_leaves_no_process_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE on a child's pidfd_open, after the root's SIGSTOP: the root is still
    killed (a runc left stopped never ends: the cancelled start, the shutdown hang)."""
    p, c, g = _start_tree(tmp_path)
    real = os.pidfd_open
    calls = 0
    opened: list[int] = []

    def pidfd_open(pid: int, flags: int = 0) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(errno.EMFILE, "Too many open files")
        fd = real(pid, flags)
        opened.append(fd)
        return fd
    monkeypatch.setattr(pidwatch.os, "pidfd_open", pidfd_open)
    before = set(os.listdir("/proc/self/fd"))
    try:
        with caplog.at_level(logging.WARNING, "pydockerd.exec"):
            fds = pidwatch.kill_tree(p.pid)
        monkeypatch.undo()
        assert fds == []
        assert p.wait(timeout=10) == -signal.SIGKILL, "the root was left stopped"
        assert "descendants may be missed" in caplog.text
        assert set(os.listdir("/proc/self/fd")) <= before, "a pidfd leaked"
    finally:
        _cleanup(p, c, g)


def test_children_not_readable_are_noticed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """/proc unreadable under fd pressure: kill_tree says it may have missed
    descendants instead of silently taking the tree for the root alone."""
    p, c, g = _start_tree(tmp_path)

    def listdir(path: str) -> list[str]:
        raise OSError(errno.EMFILE, "Too many open files")
    try:
        monkeypatch.setattr(procfs.os, "listdir", listdir)
        with pytest.raises(OSError):
            procfs.children(p.pid, strict=True)
        assert procfs.children(p.pid) == set()
        with caplog.at_level(logging.WARNING, "pydockerd.exec"):
            assert pidwatch.kill_tree(p.pid) == []
        monkeypatch.undo()
        assert "descendants may be missed" in caplog.text
        assert p.wait(timeout=10) == -signal.SIGKILL
    finally:
        _cleanup(p, c, g)


def test_strict_children_of_a_gone_process_are_none() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert procfs.children(p.pid, strict=True) == set()


# P forks C; C, at the trigger file, clones G with CLONE_PARENT (a child of P, as
# runc's nsexec stages are) and G writes its pid
_CLONE_PARENT = r'''
import ctypes, os, sys, time
trigger, g_file = sys.argv[1:]
libc = ctypes.CDLL(None, use_errno=True)
if os.fork() == 0:
    while not os.path.exists(trigger):
        time.sleep(0.001)
    if libc.syscall(56, 0x00008000 | 17, 0, 0, 0, 0) == 0:   # clone(CLONE_PARENT|SIGCHLD)
        open(g_file + ".tmp", "w").write(str(os.getpid()))
        os.rename(g_file + ".tmp", g_file)
        time.sleep(60); os._exit(0)
    time.sleep(60); os._exit(0)
time.sleep(60)
'''


def test_a_child_cloned_with_clone_parent_after_the_read_is_killed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """C, not stopped yet when P's children were read, clones G as P's child: a
    later pass finds G, which is killed and handed over with the others."""
    trigger, g_file = tmp_path / "go", tmp_path / "g"
    p = subprocess.Popen([sys.executable, "-c", _CLONE_PARENT, str(trigger), str(g_file)])
    _wait_for(lambda: len(procfs.children(p.pid)) == 1, "C never started")
    real = procfs.children
    calls = 0

    def children(pid: int | str, strict: bool = False) -> set[int]:
        nonlocal calls
        calls += 1
        kids = real(pid, strict)
        if calls == 1:                  # P's children read; C clones G meanwhile
            trigger.touch()
            _wait_for(g_file.exists, "G was never cloned")
        return kids
    monkeypatch.setattr(pidwatch, "children", children)
    fds: list[int] = []
    g = 0
    try:
        fds = pidwatch.kill_tree(p.pid)
        g = int(g_file.read_text())
        handed = [_pidfd_pid(fd) for fd in fds]
        assert g in handed, "G was missed"
        _wait_for(lambda: _state(g) in ("Z", "gone"), "G was not killed")
    finally:
        for fd in fds:
            os.close(fd)
        _cleanup(p, *([g] if g else []), *real(p.pid))
