"""The log pipeline: one asyncio tailer per container with output to convert.

conmon (which outlives the daemon) writes each run's output into a spool under the
exec root; the tailer reads it from the cursor, hands the records to the driver
(json-file, local, or a remote one: drivers.py), commits at record boundaries
and saves the cursor, then
punches the consumed head out of the spool. A run's spool is removed once its
conmon is gone and everything in it is written. While the daemon is stopped the
spool just grows; the next daemon resumes from the cursor (see spool.py and
rotate.py for why nothing is lost or written twice).
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, BinaryIO, Callable, TypeVar

from ..util.inotify import DirWatcher
from ..util.tasks import TaskOwner
from .drivers import LogTarget, interrupt, open_driver
from .message import LogDriver
from .netio import DriverClosed
from .spool import SPOOL_SUFFIX, Assembler, Cursor, punch_hole, spools
from .throttle import Throttle, continue_process

log = logging.getLogger("pydockerd.logs")

_READ = 1 << 20
_PUNCH_EVERY = 1 << 20
_IDLE_MIN, _IDLE_MAX = 0.005, 0.2
# a tailer whose bundle is watched (inotify) is woken by conmon's writes, a new
# spool, and the monitor at the run's exit (drained); it polls only as a safety net
# (each wake-up is a few syscalls on the loop: at 10 s, 1,000 idle tailers still
# took a third of the loop's time while containers were being started)
_IDLE_WATCHED = 60.0
_REOPEN_MAX = 5.0            # seconds between tries to open a remote driver
_GUARD_EVERY = 0.1           # a long step: how often the spool's backlog is looked at
T = TypeVar("T")


class Feed:
    """A follower's queue of the live files, each opened as it was created, so a
    `logs -f` that is slower than the rotations still reads every file."""

    def __init__(self) -> None:
        self.files: deque[BinaryIO] = deque()

    def close(self) -> None:
        while self.files:
            self.files.popleft().close()


class _Tail:
    def __init__(self, target: LogTarget, alive: Callable[[], bool],
                 remote: LogDriver | None = None, watcher: DirWatcher | None = None,
                 throttle: Throttle | None = None) -> None:
        self.target = target
        self.throttle = throttle    # blocking mode: the spool's bound (throttle.py)
        self.cursor: Cursor | None = None
        self.watcher = watcher
        self.watched = False        # woken by inotify: long idle waits are safe
        self.alive = alive          # is the container's current conmon running?
        self.wake = asyncio.Event()
        self.stopping = False               # the container is being removed
        self.task: asyncio.Task[None] | None = None
        self.committed = asyncio.Event()   # set at every commit, for `logs -f`
        self.feeds: set[Feed] = set()
        self.opened = remote        # a remote driver the start path connected
        self.driver: LogDriver | None = None
        # a remote driver may block in log() as long as its endpoint is slow or dead
        # (blocking mode): its tailer gets its own thread, never the shared pool's
        self.executor = ThreadPoolExecutor(1, f"logs-{target.info.id[:12]}") \
            if target.remote else None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.executor is None:
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def watch(self) -> None:
        """Be woken by changes to the spools (instead of polling every 0.2 s)."""
        if self.watcher is not None:
            self.watched = self.watcher.watch(self.target.bundle, self._changed)

    def _changed(self, name: str) -> None:
        if not name:                     # queue overflow, or the bundle went away
            self.watched = self.watched and bool(
                self.watcher and self.watcher.is_watching(self.target.bundle))
            self.wake.set()
        elif name.endswith(SPOOL_SUFFIX):
            self.wake.set()
            if self.throttle is not None:
                self._bound(name)

    def _bound(self, name: str = "") -> None:
        """(event loop) Stop or continue conmon by what its spool holds unconverted."""
        cursor = self.cursor
        if self.throttle is None or cursor is None:
            return
        name = name or cursor.spool
        try:
            size = os.stat(os.path.join(self.target.bundle, name)).st_size
        except OSError:
            return
        self.throttle.update(size - cursor.offset if name == cursor.spool else size)

    def set_throttle(self, throttle: Throttle | None) -> None:
        """A new run: the last one's conmon (gone) is no longer stopped."""
        if self.throttle is not None:
            self.throttle.resume()
        self.throttle = throttle

    @property
    def idle_max(self) -> float:
        return _IDLE_WATCHED if self.watched else _IDLE_MAX

    async def run(self) -> None:
        t = self.target
        cursor = await asyncio.to_thread(Cursor.load, t.bundle)
        self.cursor = cursor
        self.watch()
        try:
            self.driver = await self._open(cursor)
            while self.driver is not None and not self.stopping:
                self.wake.clear()        # before looking: a change from now on wakes _idle
                names = spools(t.bundle)
                if not names:
                    if not self.alive():
                        return
                    await self._idle(self.idle_max)
                    continue
                if cursor.spool != names[0]:
                    cursor.spool, cursor.offset, cursor.pending = names[0], 0, {}
                await self._drain(cursor, self.driver, last=len(names) == 1)
        except DriverClosed:
            pass        # interrupted (removal, shutdown): what was not sent stays in the spool
        finally:
            if self.throttle is not None:
                self.throttle.resume()
            if self.watcher is not None:
                self.watcher.unwatch(t.bundle)
            if self.driver is not None:
                self.driver.close()
            if self.opened is not None:
                self.opened.close()
            if self.executor is not None:
                self.executor.shutdown(wait=False)

    async def _open(self, cursor: Cursor) -> LogDriver | None:
        """The driver; a remote one whose endpoint is down (at daemon start) is tried
        again until it opens: the output waits in the spool meanwhile."""
        wait = _IDLE_MAX
        while not self.stopping:
            self.wake.clear()
            remote, self.opened = self.opened, None
            try:
                return await self._call(open_driver, self.target, cursor.driver or None,
                                        self._opened, remote)
            except ValueError as e:
                if not self.target.remote:
                    raise
                log.warning("log driver %s of %s: %s (trying again)", self.target.driver,
                            self.target.info.id[:12], e)
            await self._idle(wait)
            wait = min(wait * 2, _REOPEN_MAX)
        return None

    def interrupt(self) -> None:
        """(event loop) A remote driver stops sending: a blocked step ends."""
        if self.throttle is not None:
            self.throttle.resume()
        if self.opened is not None:
            self.opened.close()
        if self.target.remote and self.driver is not None:
            interrupt(self.driver)

    async def _drain(self, cursor: Cursor, driver: LogDriver, last: bool) -> bool:
        """Read one spool until its run is over and it is fully written; then remove it."""
        t = self.target
        path = os.path.join(t.bundle, cursor.spool)
        try:
            # unbuffered: each step reads up to 1 MiB in one call anyway, and a
            # BufferedReader's 8 KiB per running container add up (8 MiB at 1,000)
            f = open(path, "rb", buffering=0)
        except FileNotFoundError:
            cursor.spool = ""
            return True
        asm = Assembler(cursor.pending)
        punched = 0
        idle = _IDLE_MIN
        with f:
            while not self.stopping:
                self.wake.clear()        # before looking: a write from now on wakes _idle
                # nothing past the cursor (an idle run, a safety-net wake-up): no worker
                # thread round trip, which with 1,000 idle tailers cost the event loop
                # more than the starts did
                moved = os.fstat(f.fileno()).st_size > cursor.offset and \
                    await self._guarded(self._call(self._step, f, cursor, asm, driver))
                if moved:
                    idle = _IDLE_MIN
                    if cursor.offset - punched >= _PUNCH_EVERY:
                        punch_hole(f.fileno(), cursor.offset)
                        punched = cursor.offset
                    continue
                # at the end of what is written: is this run over?
                if not last or not self.alive():
                    if await self._call(self._step, f, cursor, asm, driver):
                        continue      # conmon wrote more before it went
                    await self._call(self._finish, path, cursor, asm, driver)
                    return True
                await self._idle(self.idle_max if self.watched else idle)
                idle = min(idle * 2, _IDLE_MAX)
                if len(spools(t.bundle)) > 1:
                    last = False
        return False

    async def _guarded(self, step: Awaitable[bool]) -> bool:
        """A step; while it takes long (a blocked driver) the spool's bound is kept."""
        if self.throttle is None:
            return await step
        task = asyncio.ensure_future(step)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_GUARD_EVERY)
                self._bound()
                if done:
                    return task.result()
        except asyncio.CancelledError:
            task.cancel()                # as an awaited step would be
            raise

    def _step(self, f: BinaryIO, cursor: Cursor, asm: Assembler, driver: LogDriver) -> bool:
        """(worker thread) Convert what the spool has past the cursor. DriverClosed from
        the driver goes out without saving the cursor: the message it did not send is
        converted again by the next tailer (at-least-once)."""
        f.seek(cursor.offset)
        data = f.read(_READ)
        if not data:
            return False
        base = cursor.offset

        def commit(end: int) -> None:
            cursor.driver = dict(driver.commit())
            cursor.offset, cursor.pending = base + end, dict(asm.pending)
            cursor.save(self.target.bundle)
        used = asm.feed(data, driver, commit)
        if used == 0:
            if len(data) < _READ:
                return False           # a record still being written
            used = len(data)           # a record over 1 MiB cannot come from conmon
        commit(used)
        self.committed.set()
        return True

    def _finish(self, path: str, cursor: Cursor, asm: Assembler, driver: LogDriver) -> None:
        asm.flush(driver)
        cursor.driver = dict(driver.commit())
        cursor.pending = {}
        cursor.save(self.target.bundle)
        os.unlink(path)              # first: a cursor naming a spool that is gone is harmless
        cursor.spool, cursor.offset = "", 0
        cursor.save(self.target.bundle)
        self.committed.set()

    def _opened(self, path: str) -> None:
        """(worker thread) A new live file: every follower opens it now."""
        for feed in list(self.feeds):
            try:
                feed.files.append(open(path, "rb"))
            except OSError:
                pass

    async def _idle(self, seconds: float) -> None:
        """Until `wake` is set (callers clear it before they look for work) or timeout."""
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass


class LogPipeline:
    """The daemon's tailers, by container id."""

    def __init__(self) -> None:
        self._tails: dict[str, _Tail] = {}
        self._tasks = TaskOwner("log pipeline")
        self._watcher = DirWatcher()

    def follow(self, cid: str, target: LogTarget, alive: Callable[[], bool],
               remote: LogDriver | None = None, conmon_pid: int = 0, pid: int = 0) -> None:
        """A run of `cid` started (or the daemon restarted): make sure a tailer runs.
        `remote`: the run's remote driver, connected by the start path; `conmon_pid`
        and `pid` (its container process), when the run is alive: in blocking mode its
        spool is bounded by stopping conmon (throttle.py)."""
        throttle = None
        if conmon_pid > 0:
            continue_process(conmon_pid, alive)     # a daemon that died left it stopped
            if pid > 0 and target.info.options.get("mode") != "non-blocking":
                throttle = Throttle(conmon_pid, pid, alive)
        tail = self._tails.get(cid)
        if tail is not None:
            tail.alive = alive
            if throttle is not None:
                tail.set_throttle(throttle)
            if not tail.watched:
                tail.watch()
            if remote is not None:
                if tail.driver is None and tail.opened is None:
                    tail.opened = remote        # its own is not open yet: take this one
                else:
                    remote.close()
            tail.wake.set()
            return
        tail = _Tail(target, alive, remote, self._watcher, throttle)
        self._tails[cid] = tail

        async def run() -> None:
            try:
                await tail.run()
            finally:
                if self._tails.get(cid) is tail:
                    del self._tails[cid]
                tail.committed.set()
        tail.task = self._tasks.spawn(run(), name=f"logs-{cid[:12]}")

    def subscribe(self, cid: str) -> Feed | None:
        tail = self._tails.get(cid)
        if tail is None:
            return None
        feed = Feed()
        tail.feeds.add(feed)
        return feed

    def unsubscribe(self, cid: str, feed: Feed) -> None:
        tail = self._tails.get(cid)
        if tail is not None:
            tail.feeds.discard(feed)
        feed.close()

    async def drained(self, cid: str, timeout: float) -> None:
        """A run ended (its conmon is gone): wait, at most `timeout`, until everything
        it wrote is in the driver's files, as dockerd waits for its log copier
        (2 s) before it records the exit: `docker wait` then `docker logs` sees all."""
        tail = self._tails.get(cid)
        if tail is None or tail.task is None:
            return
        tail.wake.set()
        await asyncio.wait({tail.task}, timeout=timeout)

    def busy(self, cid: str) -> bool:
        return cid in self._tails

    async def wait_change(self, cid: str, timeout: float) -> None:
        """For `logs -f`: until the tailer commits something (or `timeout`)."""
        tail = self._tails.get(cid)
        if tail is None:
            await asyncio.sleep(timeout)
            return
        tail.committed.clear()
        try:
            await asyncio.wait_for(tail.committed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def forget(self, cid: str) -> None:
        """The container is being removed: stop its tailer."""
        tail = self._tails.pop(cid, None)
        if tail is None or tail.task is None:
            return
        tail.stopping = True          # ends after its current step (never mid-commit)
        tail.interrupt()              # a remote driver's blocked step ends now
        tail.wake.set()
        await asyncio.gather(tail.task, return_exceptions=True)

    async def close(self) -> None:
        """Daemon shutdown: every tailer ends after its current step (a remote driver
        blocked on its endpoint is interrupted); the spools keep the rest."""
        for tail in self._tails.values():
            tail.stopping = True
            tail.interrupt()
            tail.wake.set()
        await self._tasks.close(grace=5)
        self._watcher.close()
