"""The daemon's own exec path (runtime/nsexec.py, nschild.py, seccompbpf.py) without
a daemon: seccomp programs loaded into a forked child (no root needed with
no_new_privs), the cases that must go to runc, and runc's lookup messages."""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys

import pytest

from pydockerd.runtime import nschild, nsexec, seccompbpf
from pydockerd.runtime.caps import DEFAULT_CAPABILITIES
from pydockerd.runtime.seccomp import profile_for

needs_libseccomp = pytest.mark.skipif(seccompbpf._libseccomp() is None,
                                      reason="libseccomp is not installed")
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2


def errnos_under(prog: seccompbpf.SeccompProgram, calls: list[tuple[int, ...]]) -> list[int]:
    """errno of each raw syscall (0 when it succeeded) in a child that loaded `prog`."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # pragma: no cover (child)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            buf = ctypes.create_string_buffer(prog.bpf, len(prog.bpf))
            fprog = nschild._SockFprog(len(prog.bpf) // 8, ctypes.addressof(buf))
            assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0
            out = []
            for call in calls:
                rc = libc.syscall(*call)
                out.append(0 if rc >= 0 else ctypes.get_errno())
            os.write(w, ",".join(map(str, out)).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return [int(x) for x in data.split(",")]


@needs_libseccomp
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")
def test_default_profile_denies_allows_and_answers_enosys_past_the_profile() -> None:
    profile = profile_for(DEFAULT_CAPABILITIES, None)
    assert profile is not None
    prog = seccompbpf.compile_profile(profile)
    assert prog is not None and prog.flags == 0
    getpid, kexec_load, clone3, future = 39, 246, 435, 1000
    assert errnos_under(prog, [(getpid,), (kexec_load, 0, 0, 0, 0), (clone3, 0, 0),
                               (future,)]) == [0, errno.EPERM, errno.ENOSYS, errno.ENOSYS]


@needs_libseccomp
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")
def test_argument_conditions_and_a_permissive_default() -> None:
    personality = 135
    prog = seccompbpf.compile_profile({
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                      "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]})
    assert prog is not None
    assert errnos_under(prog, [(personality, 8), (personality, 0xFFFFFFFF)]) == [errno.EINVAL, 0]


def test_what_only_runc_can_do_is_left_to_runc() -> None:
    assert seccompbpf.compile_profile({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}) is None
    process = {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
    cid = "f" * 64
    spec = {"linux": {"namespaces": [{"type": "pid"}, {"type": "user"}]}}
    assert nsexec.plan_exec(cid, os.getpid(), spec, process) is None      # a user namespace
    spec = {"linux": {"namespaces": [{"type": "pid"}]}}
    assert nsexec.plan_exec(cid, os.getpid(), spec, {**process, "ioPriority": {}}) is None
    assert nsexec.plan_exec(cid, os.getpid(), spec,
                            {**process, "capabilities": {"bounding": ["CAP_NOPE"]}}) is None
    # our own pid is in no cgroup of that container: never join what is not its own
    assert nsexec.plan_exec(cid, os.getpid(), spec, process) is None


def test_lookup_messages_are_runcs(tmp_path) -> None:
    exe, plain = tmp_path / "tool", tmp_path / "data"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(stat.S_IRWXU)
    plain.write_text("x")
    assert nschild._look_path("tool", f"/nonexistent:{tmp_path}") == str(exe)
    assert nschild._look_path(str(exe), "") == str(exe)
    cases = {
        "nosuch": 'exec: "nosuch": executable file not found in $PATH',
        "/nosuch": 'exec: "/nosuch": stat /nosuch: no such file or directory',
        str(plain): f'exec: "{plain}": permission denied',
        str(tmp_path): f'exec: "{tmp_path}": permission denied',
    }
    for name, message in cases.items():
        with pytest.raises(nschild._Failure) as info:
            nschild._look_path(name, str(tmp_path))
        assert str(info.value) == message


@needs_libseccomp
def test_a_syscall_only_another_listed_arch_has_gets_its_rule() -> None:
    """i386's socketcall (102) is no x86_64 syscall: libseccomp names it with a pseudo
    number, and the rule must still reach the i386 part of the program."""
    prog = seccompbpf.compile_profile({
        "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["socketcall"], "action": "SCMP_ACT_ALLOW"}]})
    assert prog is not None
    jeq_k = {int.from_bytes(prog.bpf[i + 4:i + 8], sys.byteorder)
             for i in range(0, len(prog.bpf), 8) if prog.bpf[i] == 0x15}
    assert 102 in jeq_k


def test_the_fork_server_leaves_when_idle_or_when_the_daemon_closes() -> None:
    import socket
    import threading
    import time

    from pydockerd.runtime import nsserver
    for close_first in (False, True):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        t = threading.Thread(target=nsserver.serve, args=(theirs, 0.3 if not close_first else 30))
        began = time.monotonic()
        t.start()
        if close_first:
            ours.close()
        t.join(10)
        assert not t.is_alive()
        assert time.monotonic() - began < 5
        theirs.close()
        if not close_first:
            ours.close()


def test_the_init_is_opened_only_while_its_pid_is_the_process_planned_for() -> None:
    from pydockerd.runtime.execplan import open_init, start_time
    me = os.getpid()
    started = start_time(me)
    assert started is not None and started > 0
    fd = open_init(me, started)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == f"/proc/{me}"
    finally:
        os.close(fd)
    with pytest.raises(ProcessLookupError):       # another process under the same pid
        open_init(me, started + 1)
    assert start_time(2 ** 22 + 7) is None


def _plan_for_self() -> "nsexec.ExecPlan":
    """A plan that joins nothing (no namespace, no cgroup): runs as this user."""
    from pydockerd.runtime.execplan import ExecPlan, start_time
    started = start_time(os.getpid())
    assert started is not None
    return ExecPlan("f" * 64, os.getpid(), [], [], None,
                    {"args": ["true"], "cwd": "/", "user": {"uid": os.getuid(), "gid": os.getgid()}},
                    {k: 0 for k in ("bounding", "effective", "permitted", "inheritable", "ambient")},
                    [], None, True, started)


def _our_zombie(pid: int) -> bool:
    """`pid` is a child of this process that exited and was not reaped yet."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False


def _ended(pid: int) -> bool:
    from pydockerd.util.procfs import stat_fields
    fields = stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


@pytest.mark.skipif(os.uname().machine not in nschild.SYSCALLS, reason="no fast exec here")
@pytest.mark.parametrize("stuck", [False, True])
def test_b_runs_only_once_the_server_has_its_pid(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                 stuck: bool) -> None:
    """A stuck after forking B (its container frozen by a pause) is killed after
    A_TIMEOUT and the exec reported failed: B must not go on to exec in the container
    when it thaws. B's setup is replaced by a marker (no root needed)."""
    import socket
    import time

    from pydockerd.runtime import nsserver
    marker, b_pid = tmp_path / "b-ran", tmp_path / "b-pid"
    real_fork_into = nschild._fork_into

    def fork_into(prep: nschild.Prepared, cg_fd: int) -> int:        # in A
        child = real_fork_into(prep, cg_fd)
        if child:
            b_pid.write_text(str(child))
            if stuck:
                time.sleep(60)          # frozen between B's fork and reporting it
        return child

    def setup_b(prep: nschild.Prepared, *args: object) -> None:    # in B
        marker.write_text("ran")
    monkeypatch.setattr(nschild, "_fork_into", fork_into)
    monkeypatch.setattr(nschild, "_setup_b", setup_b)
    monkeypatch.setattr(nsserver, "A_TIMEOUT", 1.0)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid, out = nsserver._fork(theirs, _plan_for_self(), [err_w, null, null, null])
        if not stuck:
            assert pid == int(b_pid.read_text()) and len(out) == 1
            go = out[0]
            time.sleep(0.2)
            assert not marker.exists()  # B waits for its go (the daemon's, nsclient.py)
            os.write(go, b"g")
            os.close(go)
            deadline = time.monotonic() + 10
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert marker.exists()
            return
        assert pid == 0 and len(out) == 2       # pidfds of A and B, for the daemon
        for fd in out:
            os.close(fd)
        deadline = time.monotonic() + 10
        while not _ended(int(b_pid.read_text())) and time.monotonic() < deadline:
            time.sleep(0.02)                # B re-parents (A is gone) and ends
        assert _ended(int(b_pid.read_text()))
        assert not marker.exists()
    finally:
        for fd in (err_r, err_w, null):
            os.close(fd)
        ours.close()
        theirs.close()
        for stuck_a in list(nsserver._stuck):
            os.waitpid(stuck_a, 0)
            nsserver._stuck.remove(stuck_a)


_STUCK_SERVER = """
import os, sys, time
from pydockerd.runtime import nschild, nsserver
real_fork_into = nschild._fork_into
def fork_into(prep, cg_fd):                     # in A
    child = real_fork_into(prep, cg_fd)
    if child:
        server = os.getppid()
        with open(os.environ["TEST_STUCK_PIDS"], "w") as f:
            f.write(f"{os.getpid()} {child}")
        if os.environ.get("TEST_STUCK_UNTIL_SERVER_DIES"):
            while os.getppid() == server:       # then reports B's pid to no one
                time.sleep(0.01)
        else:
            time.sleep(60)      # frozen between B's fork and reporting it
    return child
def setup_b(prep, *args):                       # in B
    open(os.environ["TEST_STUCK_RAN"], "w").close()
nschild._fork_into, nschild._setup_b, nsserver.A_TIMEOUT = fork_into, setup_b, 1.0
nsserver.main()
"""


@pytest.mark.skipif(os.uname().machine not in nschild.SYSCALLS, reason="no fast exec here")
def test_the_b_of_an_a_killed_as_stuck_is_reaped(tmp_path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    """A stuck after forking B (its container frozen by a pause) is killed by the fork
    server; B re-parents to the daemon (a child subreaper) when A dies and exits at
    the end of its go pipe. The daemon never had B's pid, yet must reap it: no zombie
    is left. A real fork server, whose A sleeps after the fork; this test process is
    the daemon."""
    import asyncio
    import ctypes
    import time

    from pydockerd.runtime import nsclient
    pids, ran = tmp_path / "pids", tmp_path / "ran"
    monkeypatch.setattr(nsclient, "SERVER_ARGS", ("-c", _STUCK_SERVER))
    monkeypatch.setenv("TEST_STUCK_PIDS", str(pids))
    monkeypatch.setenv("TEST_STUCK_RAN", str(ran))
    libc = ctypes.CDLL(None, use_errno=True)
    b = 0

    async def main() -> None:
        nonlocal b
        server = nsclient.ForkServer()
        monkeypatch.setattr(nsexec, "_SERVER", server)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            with pytest.raises(nsexec.ExecFailed):
                await nsexec.spawn(_plan_running("true"), (null, null, null))
            a, b = map(int, pids.read_text().split())
            deadline = time.monotonic() + 10
            while not _ended(a) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)   # A dead: B re-parented to us (it has ended)
            assert _ended(a)
            while _our_zombie(b) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert not _our_zombie(b), "B was left a zombie of the daemon"
        finally:
            os.close(null)
            await server.close()
        assert not os.path.exists(f"/proc/{a}")     # A: reaped by the server
    assert libc.prctl(36, 1, 0, 0, 0) == 0          # PR_SET_CHILD_SUBREAPER, as the daemon
    try:
        asyncio.run(main())
    finally:
        libc.prctl(36, 0, 0, 0, 0)
        if b and _our_zombie(b):
            os.waitpid(b, 0)
    assert not ran.exists()


@pytest.mark.skipif(os.uname().machine not in nschild.SYSCALLS, reason="no fast exec here")
def test_the_a_and_b_of_a_fork_server_that_died_are_reaped(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork server dies (killed) while its A, having forked B, has not reported
    yet: A and B re-parent to the daemon, which never had their pids, and end (A's
    report finds no reader, B's go pipe ends); the daemon must reap both."""
    import asyncio
    import ctypes
    import time

    from pydockerd.runtime import nsclient
    pids, ran = tmp_path / "pids", tmp_path / "ran"
    monkeypatch.setattr(nsclient, "SERVER_ARGS", ("-c", _STUCK_SERVER))
    monkeypatch.setenv("TEST_STUCK_PIDS", str(pids))
    monkeypatch.setenv("TEST_STUCK_RAN", str(ran))
    monkeypatch.setenv("TEST_STUCK_UNTIL_SERVER_DIES", "1")
    libc = ctypes.CDLL(None, use_errno=True)
    left: list[int] = []

    async def main() -> None:
        server = nsclient.ForkServer()
        monkeypatch.setattr(nsexec, "_SERVER", server)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            start = asyncio.create_task(nsexec.spawn(_plan_running("true"), (null, null, null)))
            deadline = time.monotonic() + 10
            while not pids.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            left.extend(map(int, pids.read_text().split()))
            assert server._proc is not None
            server._proc.kill()
            with pytest.raises(nsexec.ExecFailed):
                await start
            while any(not _ended(p) or _our_zombie(p) for p in left) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert [p for p in left if _our_zombie(p)] == [], "left zombies of the daemon"
            assert all(_ended(p) for p in left)
        finally:
            os.close(null)
            await server.close()
    assert libc.prctl(36, 1, 0, 0, 0) == 0          # PR_SET_CHILD_SUBREAPER, as the daemon
    try:
        asyncio.run(main())
    finally:
        libc.prctl(36, 0, 0, 0, 0)
        for pid in left:
            if _our_zombie(pid):
                os.waitpid(pid, 0)
    assert not ran.exists()


def _plan_running(*args: str) -> "nsexec.ExecPlan":
    import dataclasses
    plan = _plan_for_self()
    return dataclasses.replace(plan, process={**plan.process, "args": list(args),
                                              "env": ["PATH=/usr/bin:/bin"]})


@pytest.mark.skipif(os.uname().machine not in nschild.SYSCALLS, reason="no fast exec here")
def test_an_exec_start_cancelled_before_it_has_bs_pid_never_runs_b(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exec start (its client gone) is cancelled while the fork server forks: B
    must not run untracked. It goes on only once the start has its pid; the next
    exec through the same server runs as usual."""
    import asyncio
    import time

    from pydockerd.runtime import nsclient
    never, ran = tmp_path / "never", tmp_path / "ran"

    async def main() -> None:
        server = nsclient.ForkServer()
        monkeypatch.setattr(nsexec, "_SERVER", server)
        never_started: list[int] = []
        real = server._never_started

        def record(pid: int, go: int) -> None:
            never_started.append(pid)
            real(pid, go)
        monkeypatch.setattr(server, "_never_started", record, raising=False)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            assert await server.up()
            start = asyncio.create_task(nsexec.spawn(
                _plan_running("sh", "-c", f"echo > {never}"), (null, null, null)))
            while not server._waiters:  # the request is on its way to the server
                await asyncio.sleep(0)
            start.cancel()
            with pytest.raises(asyncio.CancelledError):
                await start
            pid, _ = await nsexec.spawn(_plan_running("sh", "-c", f"echo > {ran}"),
                                        (null, null, null))
            deadline = time.monotonic() + 10
            while not ran.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert ran.exists()
            assert len(never_started) == 1 and never_started[0]     # answered meanwhile
            while not _ended(never_started[0]) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert _ended(never_started[0])
        finally:
            os.close(null)
            await server.close()
    asyncio.run(main())
    assert not never.exists()


def test_an_exec_start_cancelled_once_b_goes_on_ends_b(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """Cancelled after B was let go, before B execs (the start reads B's error pipe
    until then): the start ends B, whose pid nobody else would ever have."""
    import asyncio
    import subprocess

    class Server:
        def __init__(self) -> None:
            self.ended: list[int] = []
            self.proc: subprocess.Popen[bytes] | None = None
            self.err_w = -1

        async def up(self) -> bool:
            return True

        async def fork(self, plan: object, fds: list[int]) -> int:
            self.err_w = os.dup(fds[0])         # B, not exec'd yet, holds it
            self.proc = subprocess.Popen(["sleep", "60"])
            return self.proc.pid

        def end(self, pid: int) -> None:
            self.ended.append(pid)
            os.kill(pid, 9)

        def settled(self, pid: int) -> None:
            pass
    server = Server()
    monkeypatch.setattr(nsexec, "_SERVER", server)

    async def main() -> None:
        start = asyncio.create_task(nsexec.spawn(_plan_for_self(), (0, 1, 2)))
        while server.proc is None:
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)               # reading B's error pipe
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
    try:
        asyncio.run(main())
        assert server.proc is not None
        assert server.ended == [server.proc.pid]
        assert server.proc.wait(5) == -9
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        if server.err_w >= 0:
            os.close(server.err_w)


@pytest.mark.skipif(os.uname().machine not in nschild.SYSCALLS, reason="no fast exec here")
def test_a_fork_that_fails_leaves_no_descriptor_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork server at the pid limit: fork() fails (EAGAIN), the exec fails, and
    the server keeps none of the pipes it made for A and B."""
    import errno
    import socket

    from pydockerd.runtime import nsserver

    def no_fork() -> int:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    null = os.open(os.devnull, os.O_RDWR)
    plan = _plan_for_self()
    try:
        before = sorted(os.listdir("/proc/self/fd"))
        monkeypatch.setattr(nsserver.os, "fork", no_fork)
        with pytest.raises(BlockingIOError):
            nsserver._fork(theirs, plan, [null, null, null, null])
        monkeypatch.undo()
        assert sorted(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(null)
        ours.close()
        theirs.close()


@pytest.mark.parametrize("kind", ["symlink", "file", "devtmpfs-ptmx", "null"])
def test_a_ptmx_that_is_not_devpts_is_refused(tmp_path, kind: str) -> None:
    """A container process may have replaced its /dev/pts/ptmx: B opens only devpts'
    ptmx inode (char 5:2, inode 2, on a devpts mount), as runc's safeAllocPty."""
    import ctypes

    from pydockerd.runtime import devpts
    path = {"symlink": str(tmp_path / "link"), "file": str(tmp_path / "file"),
            "devtmpfs-ptmx": "/dev/ptmx", "null": "/dev/null"}[kind]
    if kind == "symlink":
        os.symlink("/dev/pts/ptmx", path)
    elif kind == "file":
        open(path, "w").close()
    if not os.path.exists(path):
        pytest.skip(f"no {path} here")
    libc = ctypes.CDLL(None, use_errno=True)
    with pytest.raises(devpts.NotDevpts, match="not on a devpts mount"):
        devpts.open_pty(libc, -1, path)


@pytest.mark.skipif(not os.access("/dev/pts/ptmx", os.R_OK | os.W_OK),
                    reason="/dev/pts/ptmx cannot be opened here")
def test_the_devpts_ptmx_gives_a_pty_pair() -> None:
    import ctypes

    from pydockerd.runtime import devpts
    libc = ctypes.CDLL(None, use_errno=True)
    master, slave = devpts.open_pty(libc, -1)
    try:
        assert os.ttyname(slave).startswith("/dev/pts/")
        os.write(master, b"hi\n")
        assert os.read(slave, 16) == b"hi\n"
    finally:
        os.close(master)
        os.close(slave)
