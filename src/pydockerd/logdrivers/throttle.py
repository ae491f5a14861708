"""Back-pressure in blocking mode: a run's spool never holds much more than HIGH
bytes that are not yet converted, while the daemon runs.

dockerd's copier blocks when the driver blocks (a syslog/fluentd endpoint that
stops reading, fluentd retrying a dead one), its pipe fills, and the container's
writes to stdout/stderr block. Our conmon writes into a spool on the exec root
(tmpfs: memory) whatever the daemon does, so the same stall would let the spool
grow without limit. Instead, when the backlog passes HIGH, the daemon stops the
run's conmon (SIGSTOP): it no longer reads the container's pipe, the pipe fills
and the container's writes block, as with dockerd. conmon continues (SIGCONT)
when the backlog is under LOW, when the container's process exits (conmon must
reap it and record the exit; a stopped conmon keeps the exited process a zombie,
so its pid cannot be reused meanwhile), and when the tailer ends (removal,
daemon shutdown: with the daemon away the spool grows again, see "Nothing lost").
A daemon that died with a conmon stopped continues it when it follows the run
again at its next start.

Signals go through a pidfd opened while conmon is known to be the run's (`alive`),
so a reused pid is never signalled.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Callable

from ..runtime.pidwatch import pid_alive, wait_pid

log = logging.getLogger("pydockerd.logs")

HIGH = 4 << 20
LOW = 1 << 20


class Throttle:
    """(event loop) Stops and continues one run's conmon by its spool's backlog."""

    def __init__(self, conmon_pid: int, pid: int, alive: Callable[[], bool]) -> None:
        self.conmon_pid = conmon_pid
        self.pid = pid                   # the container's process (conmon's child)
        self.alive = alive               # is conmon_pid still the run's conmon?
        self._pidfd = -1
        self._guard: asyncio.Task[None] | None = None
        self.stops = 0                   # how many times conmon was stopped

    @property
    def stopped(self) -> bool:
        return self._pidfd >= 0

    def update(self, backlog: int) -> None:
        """The spool holds `backlog` bytes not yet converted."""
        if self.stopped:
            if backlog < LOW:
                self.resume()
        elif backlog > HIGH:
            self._stop()

    def _stop(self) -> None:
        if self.conmon_pid <= 0 or self.pid <= 0 or not pid_alive(self.pid):
            return                       # exiting: conmon must reap it and go
        try:
            fd = os.pidfd_open(self.conmon_pid)
        except OSError:
            return
        if not self.alive():             # the pid is no longer the run's conmon
            os.close(fd)
            return
        try:
            signal.pidfd_send_signal(fd, signal.SIGSTOP)
        except OSError:
            os.close(fd)
            return
        self._pidfd = fd
        self.stops += 1
        self._guard = asyncio.get_running_loop().create_task(self._watch_exit())
        log.debug("logs: conmon %d stopped (spool over %d bytes)", self.conmon_pid, HIGH)

    async def _watch_exit(self) -> None:
        await wait_pid(self.pid)         # its pidfd is readable at exit, zombie or not
        self.pid = 0                     # exited: never stop this run's conmon again
        self.resume()

    def resume(self) -> None:
        """Continue conmon if it is stopped (also at the end of the tailer)."""
        fd, self._pidfd = self._pidfd, -1
        guard, self._guard = self._guard, None
        if guard is not None and guard is not asyncio.current_task():
            guard.cancel()
        if fd < 0:
            return
        try:
            signal.pidfd_send_signal(fd, signal.SIGCONT)
        except OSError:
            pass                         # gone
        finally:
            os.close(fd)
        log.debug("logs: conmon %d continued", self.conmon_pid)


def continue_process(pid: int, alive: Callable[[], bool]) -> None:
    """SIGCONT `pid` if it is (still) the run's conmon: a daemon that died while it
    was stopped left it so."""
    if pid <= 0:
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if alive():
            signal.pidfd_send_signal(fd, signal.SIGCONT)
    except OSError:
        pass
    finally:
        os.close(fd)
