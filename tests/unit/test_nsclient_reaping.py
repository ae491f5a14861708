"""The exec fork server's forks that the daemon was never told about (runtime/
nsclient.py, nsserver.py): a stuck A, the B an A forked, an A left behind by a
server that died. Real fork servers whose A is slowed down or stuck; this test
process is the daemon (a child subreaper)."""
from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import signal
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from pydockerd.runtime import nschild, nsclient, nsexec, nsserver
from tests.unit.test_nsexec import _STUCK_SERVER, _ended, _our_zombie, _plan_running

pytestmark = pytest.mark.skipif(os.uname().machine not in nschild.SYSCALLS,
                                reason="no fast exec here")

# A forks its B only once the server is gone (a slow A, or one frozen, then thawed)
_LATE_SERVER = """
import os, sys, time
from pydockerd.runtime import nschild, nsserver
real_fork_into = nschild._fork_into
def fork_into(prep, cg_fd):                     # in A, before B's fork
    server = os.getppid()
    with open(os.environ["TEST_A_PID"], "w") as f:
        f.write(str(os.getpid()))
    while os.getppid() == server:
        time.sleep(0.01)
    time.sleep(0.5)                 # after the daemon's first scan of its children
    child = real_fork_into(prep, cg_fd)
    if child:
        with open(os.environ["TEST_B_PID"], "w") as f:
            f.write(str(child))
    return child
def setup_b(prep, *args):
    open(os.environ["TEST_B_RAN"], "w").close()
nschild._fork_into, nschild._setup_b = fork_into, setup_b
nsserver.main()
"""

# as _STUCK_SERVER, but only the first A is stuck
_STUCK_ONCE_SERVER = _STUCK_SERVER.replace(
    "    child = real_fork_into(prep, cg_fd)\n",
    "    child = real_fork_into(prep, cg_fd)\n"
    "    if os.path.exists(os.environ['TEST_STUCK_PIDS']): return child\n", 1)


def _pidfds_not_of(pid: int) -> list[int]:
    """This process's pidfds but one of `pid` (a child watcher may hold the server's)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:[pidfd]":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        if int(info.get("Pid", "0")) != pid:
            out.append(int(fd))
    return out


@pytest.fixture
def subreaper() -> Iterator[list[int]]:
    """This process as the daemon (PR_SET_CHILD_SUBREAPER); pids to reap if a test fails."""
    libc = ctypes.CDLL(None, use_errno=True)
    left: list[int] = []
    assert libc.prctl(36, 1, 0, 0, 0) == 0
    try:
        yield left
    finally:
        libc.prctl(36, 0, 0, 0, 0)
        for pid in left:
            if _our_zombie(pid):
                os.waitpid(pid, 0)


def test_an_a_left_by_a_dead_server_forks_no_b_after_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subreaper: list[int]) -> None:
    """The fork server dies while its A has not forked B yet: A re-parents to the
    daemon, which kills it (it would fork B after a one-time scan, B a zombie of the
    daemon for ever), waits for it and reaps it; no B runs."""
    a_pid, b_pid, ran = tmp_path / "a", tmp_path / "b", tmp_path / "ran"
    monkeypatch.setattr(nsclient, "SERVER_ARGS", ("-c", _LATE_SERVER))
    monkeypatch.setenv("TEST_A_PID", str(a_pid))
    monkeypatch.setenv("TEST_B_PID", str(b_pid))
    monkeypatch.setenv("TEST_B_RAN", str(ran))

    async def main() -> None:
        server = nsclient.ForkServer()
        monkeypatch.setattr(nsexec, "_SERVER", server)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            start = asyncio.create_task(nsexec.spawn(_plan_running("true"), (null, null, null)))
            deadline = time.monotonic() + 10
            while not a_pid.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert server._proc is not None
            server._proc.kill()
            with pytest.raises(nsexec.ExecFailed):
                await start
            a = int(a_pid.read_text())
            subreaper.append(a)
            while not (_ended(a) and not _our_zombie(a)) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert _ended(a) and not _our_zombie(a), "A was left"
            await asyncio.sleep(1.0)        # when A would have forked B
            if b_pid.exists():
                subreaper.append(int(b_pid.read_text()))
            assert not b_pid.exists(), "A forked B after the scan"
            while len(server._tasks) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert len(server._tasks) == 0
        finally:
            os.close(null)
            await server.close()
    asyncio.run(main())
    assert not ran.exists()


def test_the_reaper_of_a_stuck_fork_ends_with_it_not_with_the_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subreaper: list[int]) -> None:
    """Once a stuck A and its B are gone the daemon holds nothing for them (no task,
    no pidfd) while the server lives on (regular execs, health checks, keep it); the
    server reaps A at its next request."""
    pids, ran = tmp_path / "pids", tmp_path / "ran"
    monkeypatch.setattr(nsclient, "SERVER_ARGS", ("-c", _STUCK_ONCE_SERVER))
    monkeypatch.setenv("TEST_STUCK_PIDS", str(pids))
    monkeypatch.setenv("TEST_STUCK_RAN", str(ran))

    async def main() -> None:
        server = nsclient.ForkServer()
        monkeypatch.setattr(nsexec, "_SERVER", server)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            with pytest.raises(nsexec.ExecFailed):
                await nsexec.spawn(_plan_running("true"), (null, null, null))
            a, b = map(int, pids.read_text().split())
            subreaper.append(b)
            assert server._proc is not None
            proc = server._proc
            deadline = time.monotonic() + 10
            while (len(server._tasks) or _pidfds_not_of(proc.pid)) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert _ended(a) and not os.path.exists(f"/proc/{b}")     # B reaped
            assert len(server._tasks) == 0 and _pidfds_not_of(proc.pid) == []
            assert server._proc is proc and proc.returncode is None     # it lives on
            pid, _ = await nsexec.spawn(_plan_running("true"), (null, null, null))
            await nsexec.wait_pid(pid)      # (its B: the test's marker, then _exit)
            assert not os.path.exists(f"/proc/{a}")     # reaped by the server
        finally:
            os.close(null)
            await server.close()
    asyncio.run(main())


_SLOW_A = """
import os, sys, time
trigger, b_file = sys.argv[1:]
while not os.path.exists(trigger):
    time.sleep(0.001)
b = os.fork()
if b == 0:
    time.sleep(30)
    os._exit(0)
with open(b_file, "w") as f:
    f.write(str(b))
time.sleep(60)
"""


def _pidfd_pid(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return int(next(line.split()[1] for line in f if line.startswith("Pid:")))


def test_a_slow_a_killed_as_stuck_cannot_fork_its_b_unseen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow (not frozen) A forks B right after the server read its children and
    dies at once when killed, handing B to the daemon: B must be among the pidfds
    the server hands the daemon (or never be forked)."""
    import subprocess
    import sys
    trigger, b_file = tmp_path / "go", tmp_path / "b"
    a = subprocess.Popen([sys.executable, "-c", _SLOW_A, str(trigger), str(b_file)])
    real_children = nsserver.children
    calls = 0

    def children(pid: int | str) -> set[int]:
        nonlocal calls
        calls += 1
        if calls == 1:                  # the read before the kill; then A forks B
            kids = real_children(pid)
            trigger.touch()
            deadline = time.monotonic() + 1
            while not b_file.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            return kids
        deadline = time.monotonic() + 5     # the read after the kill: A is dead
        while not _ended(a.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        return real_children(pid)
    monkeypatch.setattr(nsserver, "children", children)
    pid_r, pid_w = os.pipe()
    out: list[int] = []
    try:
        out = nsserver._abandon(a.pid, pid_r, [])
        handed = [_pidfd_pid(fd) for fd in out]
        assert handed[0] == a.pid
        if b_file.exists():
            assert int(b_file.read_text()) in handed[1:], "B was forked unseen"
    finally:
        for fd in out + [pid_r, pid_w]:
            os.close(fd)
        a.kill()
        a.wait()
        if a.pid in nsserver._stuck:
            nsserver._stuck.remove(a.pid)
        if b_file.exists():
            try:
                os.kill(int(b_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_late_a_that_reported_and_left_hands_its_b_over() -> None:
    """A slow A reports B's pid just after the server gave up on it, and exits: B
    (the daemon's child then) is among the pidfds the server hands over."""
    import subprocess
    import sys
    pid_r, pid_w = os.pipe()
    script = ("import os, time\nb = os.fork()\nif b == 0:\n    time.sleep(30)\n"
              "    os._exit(0)\nos.write(%d, str(b).encode())\n" % pid_w)
    a = subprocess.Popen([sys.executable, "-c", script], pass_fds=(pid_w,))
    os.close(pid_w)
    out: list[int] = []
    b = 0
    try:
        deadline = time.monotonic() + 10
        while not _ended(a.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        out = nsserver._abandon(a.pid, pid_r, [])
        handed = [_pidfd_pid(fd) for fd in out]
        b = handed[1] if len(handed) > 1 else 0
        assert handed[0] == a.pid and len(handed) == 2, "B was left unseen"
    finally:
        for fd in out + [pid_r]:
            os.close(fd)
        a.wait()
        if a.pid in nsserver._stuck:
            nsserver._stuck.remove(a.pid)
        if b:
            os.kill(b, signal.SIGKILL)


def _small_sndbuf(sock: socket.socket) -> None:
    """A send buffer of 64 KiB (the kernel doubles it): 60 requests of 8 KB fill
    it whatever net.core.wmem_default is."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)


def _server_on_a_pair() -> tuple[nsclient.ForkServer, socket.socket]:
    """A ForkServer client whose socket is one end of a pair, with a small send
    buffer; the other end plays the server (in a running loop)."""
    server = nsclient.ForkServer()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    _small_sndbuf(ours)
    ours.setblocking(False)
    asyncio.get_running_loop().add_reader(ours.fileno(), server._on_reply)
    server._sock = ours
    return server, theirs



def _answer_one(theirs: socket.socket) -> object:
    """Play the server for one request: close the fds it carried, answer "A failed"
    (pid 0); its plan."""
    msg, fds, _, _ = socket.recv_fds(theirs, 1 << 20, 4)
    for fd in fds:
        os.close(fd)
    req_id, plan = pickle.loads(msg)
    theirs.send(pickle.dumps((req_id, 0)))
    return plan


async def _fill(server: nsclient.ForkServer, plan: bytes,
                fds: list[int]) -> list[asyncio.Task[int | None]]:
    """60 requests of `plan`: the socket's queue fills, the last ones wait for room."""
    forks = [asyncio.create_task(server.fork(plan, fds)) for _ in range(60)]
    deadline = time.monotonic() + 5
    while server._wait_room is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert server._wait_room is not None, "the socket never filled"
    return forks


def test_requests_wait_for_room_on_a_full_socket() -> None:
    """The server held up (a stuck A: up to 10 s) while execs keep coming: its
    socket's queue fills; the next requests wait for room instead of taking the
    server for gone (which failed every exec in flight)."""

    async def main() -> None:
        server, theirs = _server_on_a_pair()
        theirs.setblocking(False)
        r, w = os.pipe()
        plan = b"p" * 8000              # a plan: a few KB
        try:
            forks = await _fill(server, plan, [r, w])   # the server is stuck meanwhile
            await asyncio.sleep(0)
            assert not any(f.done() for f in forks), "requests failed on a full socket"
            answered = 0
            deadline = time.monotonic() + 10
            while answered < len(forks) and time.monotonic() < deadline:
                try:
                    assert _answer_one(theirs) == plan
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                answered += 1
            assert await asyncio.gather(*forks) == [0] * len(forks)
        finally:
            os.close(r)
            os.close(w)
            await server.close()
            theirs.close()
    asyncio.run(main())


def test_requests_waiting_for_room_end_when_the_server_goes() -> None:

    async def main() -> None:
        server, theirs = _server_on_a_pair()
        r, w = os.pipe()
        try:
            forks = await _fill(server, b"p" * 8000, [r, w])
            theirs.close()                  # the server dies
            done, pending = await asyncio.wait(forks, timeout=5)
            assert not pending
            results = [f.exception() or f.result() for f in forks]
            assert {type(x) for x in results} == {ConnectionError, type(None)}
            assert not server.ready() and server._wait_room is None
        finally:
            os.close(r)
            os.close(w)
            await server.close()
    asyncio.run(main())


def test_a_plan_too_large_for_the_socket_fails_alone() -> None:
    """A plan larger than the socket's send buffer (a big env) is EMSGSIZE: that
    exec alone goes to runc (None); the server is not taken for gone, the exec in
    flight gets its answer."""

    async def main() -> None:
        server, theirs = _server_on_a_pair()
        r, w = os.pipe()
        try:
            other = asyncio.create_task(server.fork(b"small plan", [r, w]))   # in flight
            await asyncio.sleep(0)
            assert await server.fork(b"e" * 300_000, [r, w]) is None
            assert server.ready()
            assert _answer_one(theirs) == b"small plan"
            assert await asyncio.wait_for(other, 5) == 0
        finally:
            os.close(r)
            os.close(w)
            await server.close()
            theirs.close()
    asyncio.run(main())


def test_close_ends_the_requests_waiting_for_room() -> None:
    """The daemon's shutdown (close) while requests wait for room, the server
    alive but not reading: every waiter ends."""

    async def main() -> None:
        server, theirs = _server_on_a_pair()
        r, w = os.pipe()
        try:
            forks = await _fill(server, b"p" * 8000, [r, w])
            await asyncio.wait_for(server.close(), 5)
            done, pending = await asyncio.wait(forks, timeout=5)
            assert not pending, f"{len(pending)} requests still waiting after close()"
        finally:
            os.close(r)
            os.close(w)
            theirs.close()
    asyncio.run(main())
