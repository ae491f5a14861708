"""The fork server of the daemon's exec path (runtime/nsexec.py).

Forking the daemon itself for every exec costs it more than the fork: every
page it writes afterwards takes a copy-on-write fault (~2.5 ms of system time
per exec for a 40 MB daemon), and the children pay for the large address space
when they exit. This small single-threaded process (`python -m
pydockerd.runtime.nsserver <fd> <daemon pid>`, started by the daemon at its
first exec, killed with it by PR_SET_PDEATHSIG, gone after two idle minutes)
does the forking instead.

Protocol, on a SOCK_SEQPACKET socketpair: the daemon sends pickle((request id,
ExecPlan)) with the fds [error pipe write end, console socket | stdin, stdout,
stderr]; the server forks A (nschild.run_child_a), reads B's pid from A, reaps
A, and answers pickle((request id, B's pid or 0)), with B's pid the write end
of B's "go" pipe. A gone, B re-parents to the daemon (a child subreaper), which
reaps it. Failures travel on the error pipe, which the daemon reads itself.
With 0 for an A killed as stuck come pidfds of A and of the B it forked (if it
did): B ends when it thaws, re-parented to the daemon, which knows it by its
pidfd and reaps it (nsclient.py).

B does nothing in the container until the daemon has B's pid: it waits for a
byte on its go pipe (as runc's exec child waits for its parent's
SYNC_GRANDCHILD), which the daemon writes once the exec's start has the pid
(nsclient.py). A killed as stuck, the server gone before its answer, or a start
cancelled before it has the pid closes that pipe without the byte and B exits:
an exec reported failed, or never reported, never runs.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import platform
import select
import signal
import socket
import sys
import time

from ..util.procfs import children
from .execplan import ExecPlan
from .nschild import SYSCALLS, Prepared, run_child_a

_PR_SET_PDEATHSIG = 1
MAX_FDS = 4
IDLE_EXIT = 120.0          # seconds without a request: an idle daemon has no server
A_TIMEOUT = 10.0           # seconds A has to report B's pid
_stuck: list[int] = []     # A processes killed while frozen, reaped when they are gone


def serve(sock: socket.socket, idle_exit: float = IDLE_EXIT) -> None:
    """Answer fork requests until the daemon closes its end, or none came for
    `idle_exit` seconds (the next exec starts another server)."""
    sock.settimeout(idle_exit)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, MAX_FDS)
        except (ConnectionError, OSError):      # socket.timeout is an OSError
            msg = b""
        if not msg:                        # idle, or the daemon closed its end
            _reap_stuck()
            return
        _reap_stuck()
        req_id, pid = 0, 0
        out: list[int] = []
        for fd in fds:         # close-on-exec (recv_fds ignores its flags): the error
            os.set_inheritable(fd, False)       # pipe must end with B's exec
        try:
            req_id, plan = pickle.loads(msg)
            pid, out = _fork(sock, plan, fds)
        except Exception:  # noqa: BLE001 - the daemon sees pid 0 and the error pipe
            pid = 0
        finally:
            for fd in fds:
                os.close(fd)
        reply = pickle.dumps((req_id, pid))
        try:
            if out:
                socket.send_fds(sock, [reply], out)
            else:
                sock.send(reply)
        finally:
            for fd in out:
                os.close(fd)            # the daemon's now: B goes when it writes


def _reap_stuck() -> None:
    """A processes killed as stuck that have died since (their container thawed).
    One still frozen when this server leaves re-parents to the daemon, which reaps
    it then (nsclient.py)."""
    for stuck in list(_stuck):
        try:
            if not os.waitpid(stuck, os.WNOHANG)[0]:
                continue
        except ChildProcessError:
            pass
        _stuck.remove(stuck)


def _fork(sock: socket.socket, plan: ExecPlan, fds: list[int]) -> tuple[int, list[int]]:
    """(B's pid, [the write end of B's go pipe]); (0, []): A failed; (0, [pidfd of A,
    pidfd of B if A forked it]): A is stuck, and was killed."""
    terminal = bool(plan.process.get("terminal"))
    err_w = fds[0]
    console = fds[1] if terminal else -1
    stdio = (-1, -1, -1) if terminal else (fds[1], fds[2], fds[3])
    prep = Prepared.build(plan, SYSCALLS[platform.machine()])
    pipes = list(os.pipe())
    try:
        pipes += os.pipe()
        pid_a = os.fork()
    except BaseException:           # no A (EAGAIN: at the pid limit), no pipe kept
        for fd in pipes:
            os.close(fd)
        raise
    pid_r, pid_w, go_r, go_w = pipes
    if pid_a == 0:                                       # pragma: no cover (child)
        os.close(pid_r)
        os.close(go_w)
        sock.close()
        run_child_a(prep, stdio, pid_w, err_w, console, go_r)
    os.close(pid_w)
    os.close(go_r)
    chunks: list[bytes] = []
    pid = 0
    deadline = time.monotonic() + A_TIMEOUT
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pid_r], [], [], left)[0]:
                # A is stuck (its container was frozen by a pause meanwhile): the
                # other execs must not wait for it; it dies when thawed, and B (if A
                # forked it) reads the end of the go pipe without the go and exits
                return 0, _abandon(pid_a, pid_r, chunks)
            data = os.read(pid_r, 64)
            if not data:
                break
            chunks.append(data)
        os.waitpid(pid_a, 0)
        text = b"".join(chunks)
        pid = int(text) if text else 0
        return (pid, [go_w]) if pid else (0, [])
    finally:
        os.close(pid_r)
        if not pid:
            os.close(go_w)


def _abandon(pid_a: int, pid_r: int, chunks: list[bytes]) -> list[int]:
    """Kill a stuck A; pidfds of A and of the B it forked, if it did. B re-parents to
    the daemon when A dies (at the thaw) and knows nothing of its pid: the daemon
    reaps it through its pidfd. A is stopped first: with a signal pending it forks
    no more (the kernel fails a fork then), and does not die before its children
    are read (which would hand a B forked just now to the daemon unseen); they are
    read again after the kill (a stop is not a kill: it may have gone on). An A that
    was slow, not frozen, may have reported B's pid and exited meanwhile: that B
    is the daemon's too."""
    out = [os.pidfd_open(pid_a)]        # our child, not reaped: still this process
    os.kill(pid_a, signal.SIGSTOP)
    kids = children(pid_a)
    os.kill(pid_a, signal.SIGKILL)
    _stuck.append(pid_a)
    kids |= children(pid_a)
    os.set_blocking(pid_r, False)
    try:
        chunks.append(os.read(pid_r, 64))
    except BlockingIOError:
        pass
    text = b"".join(chunks)
    if text.isdigit():
        kids.add(int(text))
    for kid in sorted(kids):
        try:
            out.append(os.pidfd_open(kid))  # reaped by nobody yet: still B
        except ProcessLookupError:
            pass
    return out


def main() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = int(sys.argv[2])
    if os.getppid() != parent:             # the daemon died before the prctl
        return
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
