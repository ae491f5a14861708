"""Running a process inside a running container: by the daemon itself where
runtime/nsexec.py can do what runc would (an ExecPlan), else `runc exec --detach`.

The process gets our pipes (or a pty whose master runc, or the forked helper,
hands us through a socket); pydockerd is a child subreaper, so once runc (or the
helper) has exited the process is our child and its exit status is ours to collect.
"""
from __future__ import annotations

import array
import asyncio
import fcntl
import json
import os
import socket
import struct
import termios
from dataclasses import dataclass
from typing import Any

from ..errors import CommandFailed, SystemError_
from ..util.tasks import cancel_and_wait, wait_out
from .execplan import ExecPlan
from .nsexec import ExecFailed, NoForkServer, end_unstarted, reap_killed, spawn
from .pidwatch import kill_tree, wait_pid

RUNC_GRACE = 10.0       # seconds a cancelled start still gives `runc exec` to end

@dataclass
class ExecProcess:
    pid: int
    stdin_fd: int | None       # write end (or the pty master)
    stdout_fd: int | None      # read end (or the pty master)
    stderr_fd: int | None
    tty: bool

    async def wait(self) -> int:
        code = await wait_pid(self.pid)
        return 126 if code is None else code

    def resize(self, height: int, width: int) -> None:
        if self.tty and self.stdout_fd is not None:
            fcntl.ioctl(self.stdout_fd, termios.TIOCSWINSZ,
                        struct.pack("HHHH", height, width, 0, 0))


async def start_exec(runc: str, runc_root: str, cid: str, process: dict[str, Any], run_dir: str,
                     name: str, attach_stdin: bool, attach_output: bool,
                     plan: ExecPlan | None = None) -> ExecProcess:
    """Start `process` in container `cid`: with `plan`, forked by the daemon (no runc);
    otherwise runc reads the process spec from a memfd and writes the pid to
    `<run_dir>/<name>.pid` (a TTY's console socket is `<name>.sock` there); both are
    removed before this returns, so concurrent execs share run_dir as long as their
    names differ."""
    if plan is not None:
        try:
            return await _start_planned(runc, plan, attach_stdin, attach_output)
        except NoForkServer:
            pass                        # nothing started: runc does it
    os.makedirs(run_dir, exist_ok=True)
    pid_path = os.path.join(run_dir, f"{name}.pid")
    argv = [runc, "--root", runc_root, "exec", "--detach", "--pid-file", pid_path]
    tty = bool(process.get("terminal"))
    child_fds: list[int] = []
    ours: dict[str, int | None] = {"in": None, "out": None, "err": None}
    csock: socket.socket | None = None
    devnull = os.open(os.devnull, os.O_RDWR)
    child_fds.append(devnull)
    stdin_arg: int = devnull
    stdout_arg: int = devnull
    stderr_arg: int = devnull
    runc_err = -1           # with a TTY: the read end of runc's stderr
    if tty:
        sock_path = os.path.join(run_dir, f"{name}.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        csock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        csock.bind(sock_path)
        csock.listen(1)
        csock.setblocking(False)
        argv += ["--tty", "--console-socket", sock_path]
        # runc's errors: a pipe of ours, not asyncio's (its wait() would wait for
        # the pipe's end too, which a `runc init` frozen by a pause may hold)
        runc_err, stderr_arg = os.pipe()
        child_fds.append(stderr_arg)
    else:
        if attach_stdin:
            r, w = os.pipe()
            stdin_arg, ours["in"] = r, w
            child_fds.append(r)
        if attach_output:
            r, w = os.pipe()
            stdout_arg, ours["out"] = w, r
            child_fds.append(w)
            r2, w2 = os.pipe()
            stderr_arg, ours["err"] = w2, r2
            child_fds.append(w2)
    spec_fd = -1
    try:
        spec_fd = _spec_memfd(process)
        argv += ["--process", f"/proc/self/fd/{spec_fd}", cid]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=stdin_arg, stdout=stdout_arg, stderr=stderr_arg,
            pass_fds=(spec_fd,))
    except BaseException as e:      # a cancel too: asyncio has killed and reaped runc
        for fd in [v for v in ours.values() if v is not None] + [runc_err]:
            if fd >= 0:
                os.close(fd)
        if csock is not None:
            _close_console_socket(csock, sock_path)
        if isinstance(e, OSError):
            raise SystemError_(f"cannot run runc: {e}") from e
        raise
    finally:
        for fd in child_fds + ([spec_fd] if spec_fd >= 0 else []):
            os.close(fd)
    started = asyncio.ensure_future(_runc_started(proc, argv, csock, pid_path,
                                                  runc_err if tty else ours["err"]))
    grace: asyncio.TimerHandle | None = None
    killed: list[int] = []      # pidfds of what runc had started, killed with it

    def cancelled() -> None:
        nonlocal grace
        if grace is None:
            grace = asyncio.get_running_loop().call_later(RUNC_GRACE, _kill, proc, killed)
    try:
        # runc goes on to its end even when the start is cancelled (its client gone, a
        # shutdown): then the process it started is ended, never left untracked
        pid, master = await wait_out(started, cancelled)
    except BaseException as e:
        if isinstance(e, asyncio.CancelledError) and started.done() \
                and not started.cancelled() and started.exception() is None:
            pid, master = started.result()
            if master is not None:
                os.close(master)
            end_unstarted(pid)
        for fd in [v for v in ours.values() if v is not None]:
            os.close(fd)
        raise
    finally:
        if grace is not None:
            grace.cancel()
        if killed:              # runc is gone (`started` waited for it): they are ours
            reap_killed(killed)
        if runc_err >= 0:
            os.close(runc_err)
        _unlink(pid_path)
        if csock is not None:
            _close_console_socket(csock, sock_path)
    if tty:
        assert master is not None
        return ExecProcess(pid, master, master, None, True)
    return ExecProcess(pid, ours["in"], ours["out"], ours["err"], False)


async def _start_planned(runc: str, plan: ExecPlan, attach_stdin: bool,
                         attach_output: bool) -> ExecProcess:
    tty = bool(plan.process.get("terminal"))
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    child_fds = [devnull]
    stdio = [devnull, devnull, devnull]
    ours: list[int | None] = [None, None, None]
    if not tty:
        if attach_stdin:
            stdio[0], ours[0] = os.pipe()
            child_fds.append(stdio[0])
        if attach_output:
            for i in (1, 2):
                r, stdio[i] = os.pipe()
                ours[i] = r
                child_fds.append(stdio[i])
    try:
        pid, master = await spawn(plan, (stdio[0], stdio[1], stdio[2]))
    except BaseException as e:
        for fd in ours:
            if fd is not None:
                os.close(fd)
        if isinstance(e, ExecFailed):
            raise CommandFailed([runc], 1, str(e)) from None
        if isinstance(e, OSError):
            raise SystemError_(f"cannot start the exec process: {e}") from e
        raise
    finally:
        for fd in child_fds:
            os.close(fd)
    if tty:
        assert master is not None
        return ExecProcess(pid, master, master, None, True)
    return ExecProcess(pid, ours[0], ours[1], ours[2], False)


async def _runc_started(proc: asyncio.subprocess.Process, argv: list[str],
                        csock: socket.socket | None, pid_path: str,
                        err_fd: int | None) -> tuple[int, int | None]:
    """(the process's pid, the pty master or None) once `runc exec --detach` is done."""
    master: int | None = None
    try:
        if csock is not None:
            master = await _console(proc, csock)
        await proc.wait()
        if proc.returncode != 0:
            err = b""
            if err_fd is not None:
                os.set_blocking(err_fd, False)
                try:
                    err = os.read(err_fd, 65536)
                except BlockingIOError:
                    err = b""
            raise CommandFailed(argv, proc.returncode or 0, _runc_error(err))
        if csock is not None and master is None:
            raise SystemError_("runc did not send a console")
        with open(pid_path) as f:
            return int(f.read().strip()), master
    except BaseException:
        if master is not None:
            os.close(master)
        raise


def _kill(proc: asyncio.subprocess.Process, killed: list[int]) -> None:
    """A cancelled start's runc that did not end within RUNC_GRACE (its container
    frozen by a pause): the daemon's shutdown must not wait for a thaw. What runc
    started (its `runc init`, which would exec the process at the thaw, untracked)
    is killed with it; their pidfds go to `killed`, to be reaped."""
    if proc.returncode is None:
        killed.extend(kill_tree(proc.pid))


async def _console(proc: asyncio.subprocess.Process, csock: socket.socket) -> int | None:
    """The pty master runc's init sends over the console socket, received on the
    event loop (no thread waits on a frozen init that holds the connection); None
    when runc has ended (or was killed) without it."""
    loop = asyncio.get_running_loop()
    ended = asyncio.ensure_future(proc.wait())
    conn: socket.socket | None = None
    try:
        while True:
            try:
                if conn is None:
                    conn, _ = csock.accept()
                    conn.setblocking(False)
                return _recv_fd(conn)
            except BlockingIOError:
                if ended.done():        # nothing was sent before runc's end
                    return None
            readable: asyncio.Future[Any] = loop.create_future()
            fd = (conn or csock).fileno()
            loop.add_reader(fd, _wake, readable)
            try:
                await asyncio.wait([readable, ended], return_when=asyncio.FIRST_COMPLETED)
            finally:
                loop.remove_reader(fd)
    finally:
        if conn is not None:
            conn.close()
        await cancel_and_wait(ended)


def _spec_memfd(process: dict[str, Any]) -> int:
    """The process spec in an anonymous memory file: runc reads it once, so nothing
    is written to (or removed from) a filesystem."""
    fd = os.memfd_create("process.json", os.MFD_CLOEXEC)
    try:
        data = memoryview(json.dumps(process).encode())
        while data:
            data = data[os.write(fd, data):]
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _close_console_socket(csock: socket.socket, path: str) -> None:
    csock.close()
    _unlink(path)


def _wake(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


def _recv_fd(conn: socket.socket) -> int | None:
    """The fd sent on `conn` (non-blocking: BlockingIOError while nothing came);
    None at its end without one."""
    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize),
                                  socket.MSG_CMSG_CLOEXEC)
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
    for extra in fds[1:]:
        os.close(extra)
    if fds:
        return fds[0]
    if msg:                 # bytes without the fd yet: more to come
        raise BlockingIOError()
    return None


def _runc_error(err: bytes) -> str:
    text = err.decode(errors="replace").strip()
    for line in text.splitlines():
        if "msg=" in line:
            return line.split("msg=", 1)[1].strip().strip('"').replace('\\"', '"')
    return text
