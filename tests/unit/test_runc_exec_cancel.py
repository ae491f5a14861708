"""`runc exec --detach` (the exec path where the daemon cannot fork the process
itself) when the exec start is cancelled (its client gone, the daemon shutting
down) at each of its waits: no process left running untracked, no pid file or
console socket left in the run dir, no descriptor left open. A fake runc (no root,
no container) does what runc does: the pty master over the console socket, a
detached process, its pid in the pid file; this test process is the daemon (a
child subreaper)."""
from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
from pathlib import Path

import pytest

from pydockerd.runtime import exec as rexec
from pydockerd.runtime import nsclient, nsexec

FAKE_RUNC = """
import array, os, socket, subprocess, sys, time
args = sys.argv[1:]
pid_file = args[args.index("--pid-file") + 1]
stage, here, gate, child_file = (os.environ["FAKE_STAGE"], os.environ["FAKE_HERE"],
                                 os.environ["FAKE_GATE"], os.environ["FAKE_CHILD"])

def pause(at):
    if stage == at:
        open(here, "w").close()
        while not os.path.exists(gate):
            time.sleep(0.01)

stdio = {}
if "--console-socket" in args:
    pause("console")
    master, slave = os.openpty()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(args[args.index("--console-socket") + 1])
    s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    stdio = {"stdin": slave, "stdout": slave, "stderr": slave}
child = subprocess.Popen(["sleep", "60"], start_new_session=True, **stdio)
with open(child_file, "w") as f:
    f.write(str(child.pid))
pause("pid")
with open(pid_file, "w") as f:
    f.write(str(child.pid))
"""


@pytest.fixture
def daemon_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A child subreaper with its own fork server client (which owns the ends of
    processes whose start was cancelled)."""
    runc = tmp_path / "runc"
    runc.write_text(f"#!{sys.executable}\n{FAKE_RUNC}")
    runc.chmod(0o755)
    for name in ("here", "gate", "child"):
        monkeypatch.setenv(f"FAKE_{name.upper()}", str(tmp_path / name))
    server = nsclient.ForkServer()
    monkeypatch.setattr(nsexec, "_SERVER", server)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0          # PR_SET_CHILD_SUBREAPER
    try:
        yield runc, server
    finally:
        libc.prctl(36, 0, 0, 0, 0)
        child = tmp_path / "child"
        if child.exists():                          # the test failed: clean up
            pid = int(child.read_text())
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


@pytest.fixture
def short_dir():
    """The run dir: a console socket's path must fit in sockaddr_un."""
    import shutil
    import tempfile
    path = Path(tempfile.mkdtemp(prefix="pyd-rx"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("tty,stage", [(False, "pid"), (True, "console"), (True, "pid")])
def test_a_cancelled_runc_exec_start_leaves_nothing(tmp_path: Path, daemon_like, short_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    tty: bool, stage: str) -> None:
    runc, server = daemon_like
    monkeypatch.setenv("FAKE_STAGE", stage)
    run_dir = short_dir

    async def main() -> None:
        before = _fds()
        start = asyncio.create_task(rexec.start_exec(
            str(runc), str(tmp_path / "root"), "c" * 64, {"terminal": tty, "args": ["sleep"]},
            str(run_dir), "e1", attach_stdin=True, attach_output=True))
        deadline = time.monotonic() + 20
        while not (tmp_path / "here").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)       # runc is at `stage`
        assert not start.done()
        start.cancel()
        await asyncio.sleep(0.05)
        (tmp_path / "gate").touch()         # runc goes on
        with pytest.raises(asyncio.CancelledError):
            await start
        child = tmp_path / "child"
        if child.exists():                  # runc started it: it is ended and reaped
            pid = int(child.read_text())
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert not os.path.exists(f"/proc/{pid}"), "the exec process was left"
        else:
            assert stage == "console"       # runc failed at the console socket
        await server.close()
        assert os.listdir(run_dir) == []    # no pid file, no console socket
        assert _fds() == before
    asyncio.run(main())


def test_a_start_cancelled_while_runc_is_spawned_closes_every_descriptor(
        tmp_path: Path, daemon_like, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled inside create_subprocess_exec: asyncio kills and reaps runc, and
    the pipes, the spec memfd and the console socket are closed."""
    runc, server = daemon_like
    real = asyncio.create_subprocess_exec
    spawned = asyncio.Event()

    async def create(*args: object, **kwargs: object) -> asyncio.subprocess.Process:
        proc = await real(*args, **kwargs)  # type: ignore[arg-type]
        spawned.set()
        try:
            await asyncio.Event().wait()    # still connecting its pipes
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        return proc
    monkeypatch.setattr(asyncio, "create_subprocess_exec", create)
    monkeypatch.setenv("FAKE_STAGE", "none")

    async def main() -> None:
        for tty in (False, True):
            before = _fds()
            start = asyncio.create_task(rexec.start_exec(
                str(runc), str(tmp_path / "root"), "c" * 64, {"terminal": tty},
                str(short_dir), "e1", attach_stdin=True, attach_output=True))
            await asyncio.wait_for(spawned.wait(), 20)
            spawned.clear()
            start.cancel()
            with pytest.raises(asyncio.CancelledError):
                await start
            assert _fds() == before
            assert os.listdir(short_dir) == []
        await server.close()
    asyncio.run(main())


# runc whose `runc init` is frozen (a pause): it holds the console socket (runc's
# init sends the pty master itself), and runc waits for it
FROZEN_RUNC = """
import os, socket, subprocess, sys, time
args = sys.argv[1:]
keep = ()
if "--console-socket" in args:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(args[args.index("--console-socket") + 1])
    keep = (s.fileno(),)
init = subprocess.Popen(["sleep", "60"], pass_fds=keep)
with open(os.environ["FAKE_CHILD"], "w") as f:
    f.write(str(init.pid))
time.sleep(60)
"""


def _accepted(run_dir: Path) -> bool:
    """Whether this process holds an accepted connection on a console socket in
    `run_dir` (/proc/net/unix names an accepted socket by its listener's path)."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            ours.add(link[8:-1])
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if (len(fields) > 7 and fields[5] == "03" and fields[6] in ours
                    and fields[7].startswith(str(run_dir))):
                return True
    return False


def _frozen_runc_start(tmp_path: Path, runc: Path, run_dir: Path, tty: bool
                       ) -> asyncio.Task[rexec.ExecProcess]:
    runc.write_text(f"#!{sys.executable}\n{FROZEN_RUNC}")
    return asyncio.create_task(rexec.start_exec(
        str(runc), str(tmp_path / "root"), "c" * 64, {"terminal": tty, "args": ["sh"]},
        str(run_dir), "e1", attach_stdin=True, attach_output=True))


def test_a_cancelled_tty_runc_exec_start_ends_after_the_grace(
        tmp_path: Path, daemon_like, short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen `runc init` holds the console socket's connection without sending
    the pty master: the cancelled start still ends once runc is killed after
    RUNC_GRACE (the master is not awaited in a thread that waits for a thaw)."""
    runc, server = daemon_like
    monkeypatch.setattr(rexec, "RUNC_GRACE", 1.0)

    async def main() -> None:
        before = _fds()
        start = _frozen_runc_start(tmp_path, runc, short_dir, tty=True)
        deadline = time.monotonic() + 20
        while not (tmp_path / "child").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        while not _accepted(short_dir) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)       # until we hold runc's init's connection
        assert _accepted(short_dir), "the console connection was never accepted"
        start.cancel()
        done, _ = await asyncio.wait([start], timeout=6)
        init = int((tmp_path / "child").read_text())
        if not done:                        # the "thaw", to clean up
            os.kill(init, 9)
            await asyncio.wait([start], timeout=5)
        assert done, "a cancelled start outlived RUNC_GRACE"
        with pytest.raises(asyncio.CancelledError):
            await start
        while os.path.exists(f"/proc/{init}") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await server.close()
        assert os.listdir(short_dir) == []
        assert _fds() == before
    asyncio.run(main())


def test_runc_killed_after_the_grace_leaves_no_runc_init(
        tmp_path: Path, daemon_like, short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """runc killed after RUNC_GRACE: what it had started (its `runc init`, which
    would exec the process at the thaw, untracked) is killed and reaped too."""
    runc, server = daemon_like
    monkeypatch.setattr(rexec, "RUNC_GRACE", 1.0)

    async def main() -> None:
        before = _fds()
        start = _frozen_runc_start(tmp_path, runc, short_dir, tty=False)
        deadline = time.monotonic() + 20
        while not (tmp_path / "child").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(start, 10)
        init = int((tmp_path / "child").read_text())
        while os.path.exists(f"/proc/{init}") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not os.path.exists(f"/proc/{init}"), "runc's init was left"
        assert len(server._tasks) == 0
        await server.close()
        assert os.listdir(short_dir) == []
        assert _fds() == before
    asyncio.run(main())
