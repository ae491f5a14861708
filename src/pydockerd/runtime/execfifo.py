"""Starting a created runc container without a `runc start` process.

`runc create` leaves the container's init (`runc init`) blocked opening
`<runc root>/<id>/exec.fifo` for writing; `runc start` is libcontainer's
exec(): open the fifo for reading, which lets init write one byte and exec the
container's process, read to the end (the exec closes init's end), remove the
fifo (runc tells `created` from `running` by it) and, in runc 1.2+, run the
poststart hooks. Doing the same here saves a Go process per start (~6 ms and as
much CPU). The runtime's own `start` is used whenever this does not apply: not
runc, hooks in the spec, or a fifo that is not there (a state this code does
not know: runc gives the right error).
"""
from __future__ import annotations

import asyncio
import errno
import os

from ..errors import SystemError_

FIFO = "exec.fifo"


async def start_created(state_dir: str, pid: int) -> bool:
    """Start the created container whose runc state is `state_dir` and whose init is
    `pid`; False (nothing done) when its exec fifo is not there."""
    path = os.path.join(state_dir, FIFO)
    try:
        # non-blocking: the open does not wait for init, and init's open returns
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        got = await _read_to_end(fd, pid)
    finally:
        os.close(fd)
    if not got:
        raise SystemError_("container process is already dead")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return True


async def _read_to_end(fd: int, pid: int) -> bytes:
    """What init writes, up to its exec (or its death: the pidfd tells, as runc's
    check of the init's state every 100 ms does)."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def drain() -> None:
        # epoll reports the fifo once init wrote, or closed its end (never before
        # init opened it: a fifo hangs up only after a writer came and went)
        while not done.done():
            try:
                chunk = os.read(fd, 64)
            except BlockingIOError:
                return
            except OSError as e:
                done.set_exception(SystemError_(f"read exec fifo: {e.strerror}"))
                return
            if not chunk:               # init's end closed: by its exec, or by its death
                done.set_result(None)
                return
            data.extend(chunk)

    def init_gone() -> None:
        drain()                 # what it wrote before it exec'd a process that ended
        if not done.done():
            done.set_result(None)
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except OSError as e:
        if e.errno != errno.ESRCH:
            raise
        pidfd = None
    loop.add_reader(fd, drain)
    if pidfd is not None:
        loop.add_reader(pidfd, init_gone)
    else:
        loop.call_soon(init_gone)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        if pidfd is not None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    return bytes(data)


__all__ = ["start_created"]
