"""The exit monitor: one watcher per run of a container, and the waiters.

A watcher waits for the run's conmon to exit (pidfd, runtime/pidwatch.py),
sets the run's `exited` event, then calls the exit handler (exits.py). The
event needs no lock, so a verb that holds the container's lock (stop, kill,
rm -f, restart) can signal the process, wait for the event and record the
exit itself, while the handler, which takes the lock after it, finds the exit
already recorded and only applies the restart policy.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from ..runtime.pidwatch import wait_pid
from ..util.tasks import TaskOwner
from .model import Container

ExitHandler = Callable[[str, int], Awaitable[None]]


@dataclass
class _Run:
    conmon_pid: int
    exited: asyncio.Event = field(default_factory=asyncio.Event)


class ExitMonitor:
    def __init__(self, tasks: TaskOwner, on_exit: ExitHandler) -> None:
        self._tasks = tasks
        self._on_exit = on_exit
        self._runs: dict[str, _Run] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self._removed_waiters: dict[str, list[asyncio.Future[None]]] = {}

    # ---- watching runs --------------------------------------------------------

    def watch(self, c: Container) -> None:
        """Watch the container's current run (a new run, or one found at daemon start)."""
        pid = c.state.conmon_pid
        run = self._runs.get(c.id)
        if run is not None and run.conmon_pid == pid and not run.exited.is_set():
            return
        run = self._runs[c.id] = _Run(pid)
        self._tasks.spawn(self._watch(c.id, run), f"exit watcher {c.id[:12]}")

    async def _watch(self, cid: str, run: _Run) -> None:
        await wait_pid(run.conmon_pid)
        run.exited.set()
        await self._on_exit(cid, run.conmon_pid)

    def process_exited(self, c: Container) -> asyncio.Event:
        """Set when the current run's process is gone (its exit may not be recorded yet)."""
        run = self._runs.get(c.id)
        if run is None or run.conmon_pid != c.state.conmon_pid:
            self.watch(c)
            run = self._runs[c.id]
        return run.exited

    def forget(self, cid: str) -> None:
        self._runs.pop(cid, None)

    # ---- waiters (POST /containers/{id}/wait) -----------------------------------

    def next_exit(self, cid: str) -> asyncio.Future[Container]:
        fut: asyncio.Future[Container] = asyncio.get_running_loop().create_future()
        self._exit_waiters.setdefault(cid, []).append(fut)
        return fut

    def next_removal(self, cid: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._removed_waiters.setdefault(cid, []).append(fut)
        return fut

    def exit_recorded(self, c: Container) -> None:
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c)

    def removed(self, c: Container) -> None:
        self.forget(c.id)
        for fut in self._removed_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(None)
        self.exit_recorded(c)
