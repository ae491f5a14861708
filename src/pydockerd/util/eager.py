"""Run coroutines eagerly: the first step at once, on the caller's stack.

Most API requests (`/_ping`, `GET /containers/json`, inspect) never wait for
anything: started eagerly, their answer is written in the same event-loop
callback that read the request, with no Task made and no loop iteration in
between. As with Python 3.12's eager tasks, a real Task is the current task
during that first step (so `asyncio.timeout`, aiohttp's timers and
`current_task()` work) and goes on with the coroutine if it waits: an idle
worker task from a small pool, so a request that does not wait costs no Task
at all. A worker is current for one coroutine at a time; cancelled while idle,
it ends.
"""
from __future__ import annotations

import asyncio
import logging
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from .tasks import TaskOwner

log = logging.getLogger("pydockerd.tasks")

T = TypeVar("T")
Done = Callable[[Any, "BaseException | None"], None]    # (result, error) of a waited run
_KEEP_IDLE = 16                                          # idle workers kept in the pool


class Suspended:
    """A coroutine whose first step ended by waiting; `task` runs the rest."""

    __slots__ = ("coro", "first", "task", "done")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any, task: asyncio.Task[None],
                 done: Done) -> None:
        self.coro, self.first, self.task, self.done = coro, first, task, done


class _GoOn:
    """Drives a suspended coroutine inside a task: yields what the coroutine yields
    (the task waits on it) and hands back what the task sends or throws (a
    cancellation), as `await coro` would have from the start."""

    def __init__(self, s: Suspended, exc: BaseException | None) -> None:
        self._s, self._exc = s, exc

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._s.coro
        try:
            pending = coro.throw(self._exc) if self._exc is not None else self._s.first
        except StopIteration as done:
            return done.value
        while True:
            try:
                sent = yield pending
            except BaseException as e:  # noqa: BLE001 - handed to the coroutine
                try:
                    pending = coro.throw(e)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


class _Worker:
    def __init__(self, runner: "Runner") -> None:
        self.runner = runner
        self.job: Suspended | None = None
        self.ending = False
        self.wake: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] = runner.owner.spawn(self._run(), name=runner.name)

    def give(self, job: Suspended | None) -> None:
        """A coroutine to go on with, or None: end."""
        self.job = job
        self.ending = job is None
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.ending:
            exc: BaseException | None = None
            if self.job is None:
                self.wake = loop.create_future()
                try:
                    await self.wake
                except asyncio.CancelledError as e:
                    if self.job is None:             # cancelled while idle: end
                        self.runner.forget(self)
                        raise
                    exc = e                          # meant for the job just given
            job = self.job
            if job is None:
                return
            result: Any = None
            error: BaseException | None = None
            try:
                result = await _GoOn(job, exc)
            except BaseException as e:  # noqa: BLE001 - reported to the job's owner
                error = e
                if not isinstance(e, asyncio.CancelledError):
                    log.error("%s: task failed", self.runner.name, exc_info=e)
            self.job = None
            loop.call_soon(job.done, result, error)
            if not self.runner.rest(self):
                return


class Runner:
    """Starts coroutines eagerly, each as a pooled worker task (see the module doc)."""

    def __init__(self, owner: TaskOwner, name: str) -> None:
        self.owner = owner
        self.name = name
        self.closed = False
        self._idle: list[_Worker] = []

    def start(self, coro: Coroutine[Any, Any, T], done: Done) -> T | Suspended:
        """Run `coro` until it first waits: its result, or a Suspended whose task
        runs the rest and then calls done(result, error) from the loop. What the
        first step raises propagates to the caller."""
        worker = self._idle.pop() if self._idle else _Worker(self)
        loop = worker.task.get_loop()
        if asyncio.current_task(loop) is not None:    # inside a task: no eager step
            job = Suspended(coro, None, worker.task, done)
            worker.give(job)
            return job
        _enter_task(loop, worker.task)
        try:
            first = coro.send(None)
        except StopIteration as stop:
            self.rest(worker)
            result: T = stop.value
            return result
        except BaseException:
            self.rest(worker)
            raise
        finally:
            _leave_task(loop, worker.task)
        job = Suspended(coro, first, worker.task, done)
        worker.give(job)
        return job

    def rest(self, worker: _Worker) -> bool:
        """Back to the pool (False: the worker should end)."""
        if self.closed or len(self._idle) >= _KEEP_IDLE:
            worker.give(None)
            return False
        self._idle.append(worker)
        return True

    def forget(self, worker: _Worker) -> None:
        if worker in self._idle:
            self._idle.remove(worker)

    def close(self) -> None:
        """Start nothing more; idle workers end (busy ones after their coroutine)."""
        self.closed = True
        idle, self._idle = self._idle, []
        for w in idle:
            w.give(None)
