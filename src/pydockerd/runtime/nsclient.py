"""The daemon's end of the exec fork server (runtime/nsserver.py): started at the
first exec, asked for forks over a SOCK_SEQPACKET socketpair, restarted (by the
next exec) if it dies; when it cannot run, execs use runc. The daemon never forks
itself for an exec: a fork of a process with other threads may hang on a lock one
of them held."""
from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import signal
import socket
import sys

import pydockerd

from ..util.lazy import lazy_import
from ..util.procfs import children, read_text
from ..util.tasks import TaskOwner
from .execplan import ExecPlan
from .pidwatch import reap_pidfds, signal_pidfd, wait_pid

log = logging.getLogger("pydockerd.exec")
pickle = lazy_import("pickle")      # not for an idle daemon
SERVER_ARGS = ("-m", "pydockerd.runtime.nsserver")     # then its socket fd, our pid


class ForkServer:
    """The daemon's end of runtime/nsserver.py."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Task[None] | None = None
        self._tasks = TaskOwner("exec fork server")
        self._waiters: dict[int, asyncio.Future[tuple[int, int]]] = {}
        self._handed: set[int] = set()      # B's given to a start still going on
        self._ending: set[int] = set()      # B's a `wait_pid` task reaps
        self._comm = ""                     # the server's command name (its fd number)
        self._next = 0
        self._wait_room: asyncio.Future[None] | None = None   # a full socket's room
        self._closed = False

    def ready(self) -> bool:
        return self._sock is not None

    async def up(self) -> bool:
        """Start the server if it is not running (the process is spawned; requests
        queue on its socket while it imports); False if it cannot run."""
        if self.ready() or self._closed:
            return self.ready()
        if self._starting is None:
            self._starting = self._tasks.spawn(self._start(), "start the exec fork server")
        await asyncio.shield(self._starting)
        return self.ready()

    async def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = os.path.dirname(os.path.dirname(os.path.abspath(pydockerd.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # the interpreter is the exec's /proc/self/exe until it execs (a `#!/proc/self/exe`
        # script in the container runs it there): a sealed copy, as runc runs from one,
        # so no container process can ever get a writable handle on the host's binary
        env["PYTHONHOME"] = f"{sys.base_prefix}:{sys.base_exec_prefix}"
        exe = -1
        try:
            exe = await asyncio.to_thread(sealed_copy, sys.executable)
            self._proc = await asyncio.create_subprocess_exec(
                f"/proc/self/fd/{exe}", "-S", "-P", *SERVER_ARGS, str(theirs.fileno()),
                str(os.getpid()), pass_fds=(theirs.fileno(), exe),
                stdin=asyncio.subprocess.DEVNULL, env=env, start_new_session=True, cwd="/")
            self._comm = str(exe)       # the basename of /proc/self/fd/<exe>
        except OSError as e:
            log.warning("exec fork server: %s; execs use runc", e)
            ours.close()
            return          # _starting stays set: not tried again
        finally:
            theirs.close()
            if exe >= 0:
                os.close(exe)
        ours.setblocking(False)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_reply)
        self._sock = ours
        self._starting = None

    async def fork(self, plan: ExecPlan, fds: list[int]) -> int | None:
        """B's pid (0: A failed, see the error pipe); None if the request could not be
        sent (nothing was forked: the server is gone, or this plan is larger than
        the socket takes; the exec uses runc). ConnectionError: the server died with it. B goes
        on only once its pid is returned here: cancelled before, it ends untouched."""
        assert self._sock is not None
        self._next += 1
        req_id = self._next
        fut: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        msg = [pickle.dumps((req_id, plan))]
        while True:
            if self._sock is None:
                return None                 # gone while this waited: nothing sent
            try:
                socket.send_fds(self._sock, msg, fds)
                break
            except BlockingIOError:         # its queue is full (a stuck A holds it up)
                await asyncio.shield(self._room())
            except OSError as e:
                if e.errno == errno.EMSGSIZE:   # this plan alone: the socket is fine
                    log.info("exec plan of %d bytes too large for the fork server; "
                             "runc runs it", len(msg[0]))
                    return None
                self._gone()
                return None
        self._waiters[req_id] = fut
        try:
            pid, go = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():      # answered, but not taken
                self._never_started(*fut.result())
            raise               # (still waiting: `_on_reply` ends it)
        if pid:
            self._handed.add(pid)       # until the start settles it (`settled`)
        if go >= 0:
            try:
                os.write(go, b"g")      # the caller has B's pid: B may go on
            except BrokenPipeError:
                pass                    # B is dead already: the caller reaps it
            finally:
                os.close(go)
        return pid

    def _room(self) -> asyncio.Future[None]:
        """Done when the socket can take a request again (or the server is gone)."""
        if self._wait_room is None:
            assert self._sock is not None
            loop = asyncio.get_running_loop()
            fut = self._wait_room = loop.create_future()
            loop.add_writer(self._sock.fileno(), self._roomy)
            return fut
        return self._wait_room

    def _roomy(self) -> None:
        fut, self._wait_room = self._wait_room, None
        if fut is None:
            return
        if self._sock is not None:
            asyncio.get_running_loop().remove_writer(self._sock.fileno())
        if not fut.done():
            fut.set_result(None)

    def _on_reply(self) -> None:
        assert self._sock is not None
        try:
            data, fds, _, _ = socket.recv_fds(self._sock, 4096, 4, socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            for fd in fds:
                os.close(fd)
            self._gone()
            return
        req_id, pid = pickle.loads(data)
        go = fds[0] if fds and pid else -1      # with a pid: B's go pipe
        if fds and not pid:             # pidfds of an A killed as stuck and its B
            self.reap(fds)      # A first: B is ours once A is gone
        fut = self._waiters.pop(req_id, None)
        if fut is not None and not fut.done():
            fut.set_result((pid, go))
        else:
            self._never_started(pid, go)

    def _never_started(self, pid: int, go: int) -> None:
        """A fork whose exec start was cancelled before it had B's pid: B ends at
        the end of its go pipe, before it did anything, and is reaped."""
        if go >= 0:
            os.close(go)
        if pid:
            self._reap(pid)

    def reap(self, pidfds: list[int]) -> None:
        """Reap these processes through their pidfds, parents first (`reap_pidfds`):
        a stuck A and its B (A is the server's to reap, or the daemon's,
        `_reap_orphans`, if the server leaves before it); killed ones a runc exec
        had started."""
        if self._tasks.closed:
            for fd in pidfds:
                os.close(fd)
            return
        self._tasks.spawn(reap_pidfds(pidfds), "reap exec processes killed")

    def end(self, pid: int) -> None:
        """B let go, but its start was cancelled (or failed) before the caller took
        it: killed and reaped (our child: the pid is not reused before)."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap(pid)

    def _reap(self, pid: int) -> None:
        """Reap B, our child, by its pid (the orphan scan leaves it alone meanwhile)."""
        if self._tasks.closed:
            return
        self._ending.add(pid)

        async def reap() -> None:
            try:
                await wait_pid(pid)
            finally:
                self._ending.discard(pid)
        self._tasks.spawn(reap(), "reap an exec never started")

    def settled(self, pid: int) -> None:
        """The start that was given B's pid has it (or has ended it)."""
        self._handed.discard(pid)

    def _gone(self) -> None:
        """The server died (or was killed): its pending forks fail, and the next exec
        starts another."""
        self._roomy()               # the requests waiting to be sent are not sent
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the exec fork server is gone"))
        self._waiters.clear()
        proc, self._proc = self._proc, None
        if proc is not None:        # always: a stuck A it had not reaped is ours too
            self._tasks.spawn(self._reap_orphans(proc, self._comm),
                              "reap the exec fork server")

    async def _reap_orphans(self, server: asyncio.subprocess.Process, comm: str) -> None:
        """The server is gone: its A's in flight or killed as stuck, and the B an A
        forked, re-parent to the daemon under pids it was never told. Once the
        server has exited (its children are ours then) they are the daemon's
        children still in the server's process group under its command name (no
        exec yet), but for a B given to a start. An A still alive may fork its B
        any time: each found is killed (no fork after that), waited for and reaped,
        and the scan repeats until it finds none (B is ours once its A is gone)."""
        await server.wait()
        while True:
            found = []
            for pid in children(os.getpid()):
                if pid in self._handed or pid in self._ending \
                        or not _forked_by(pid, server.pid, comm):
                    continue
                try:
                    fd = os.pidfd_open(pid)
                except ProcessLookupError:
                    continue
                if not _forked_by(pid, server.pid, comm):     # reaped and reused meanwhile
                    os.close(fd)
                    continue
                signal_pidfd(fd, signal.SIGKILL)
                found.append(fd)
            if not found:
                return
            await asyncio.gather(*(reap_pidfds([fd]) for fd in found))

    async def close(self) -> None:
        self._closed = True
        if self._starting is not None and not self._starting.done():
            await self._starting
        proc = self._proc
        if self._sock is not None:
            self._gone()              # the server reads EOF and exits
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        await self._tasks.close()


def _forked_by(pid: int, server: int, comm: str) -> bool:
    """Whether `pid` (zombie or not) is a fork of the fork server that has not exec'd."""
    raw = read_text(f"/proc/{pid}/stat")
    left, right = raw.find("("), raw.rfind(")")
    fields = raw[right + 1:].split()
    return left >= 0 and len(fields) > 2 and raw[left + 1:right] == comm[:15] \
        and fields[2] == str(server)


def sealed_copy(path: str) -> int:
    """A memfd holding a copy of `path`, sealed against any write, growth or shrink."""
    fd = os.memfd_create("pydockerd-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            done = 0
            while done < size:
                sent = os.sendfile(fd, src.fileno(), done, size - done)
                if sent == 0:
                    raise OSError(f"{path}: short copy")
                done += sent
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return fd


SERVER = ForkServer()
