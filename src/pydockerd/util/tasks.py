"""Background tasks with an owner: whoever spawns a task cancels and awaits it.

Every long-lived task of the daemon (exit watchers, restart timers, health
checks, exec reapers, API client connections, embedded DNS queries) is spawned
through a `TaskOwner`, and the owner's `close()` at shutdown cancels what is
still running and waits for it, so no task outlives the service that made it
and no exception goes unlogged. A task that serves one request belongs to that
request: it ends in the request's `finally` with `cancel_and_wait`.
"""
from __future__ import annotations

import asyncio
import logging
import types
from typing import Any, Awaitable, Callable, Coroutine, Generator, Iterable, TypeVar

log = logging.getLogger("pydockerd.tasks")

T = TypeVar("T")


class TaskOwner:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.name}: closed, cannot start {name or coro!r}")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def spawn_stepped(self, coro: Coroutine[Any, Any, None],
                      name: str | None = None) -> asyncio.Task[None] | None:
        """Run the coroutine's first step now, in the caller (no task: it must not
        need asyncio.current_task() before its first wait); if it waits, the rest
        runs as a task of this owner, else None (it finished: no task was made)."""
        if self._closed:
            return self.spawn(coro, name)          # refused as spawn refuses it
        try:
            first = coro.send(None)
        except StopIteration:
            return None
        except Exception:  # noqa: BLE001 - as a failed task's exception: logged
            log.error("%s: task %s failed", self.name, name, exc_info=True)
            return None
        return self.spawn(_Rest(coro, first), name)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s failed", self.name, task.get_name(),
                      exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self, grace: float = 0.0) -> None:
        """Spawn nothing more; give the running tasks `grace` seconds to end by
        themselves, then cancel those still running and wait until all have ended."""
        self._closed = True
        if grace > 0 and self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def cancel_and_wait(*futures: asyncio.Future[Any] | None) -> None:
    """Cancel these tasks (None and finished ones are skipped) and wait until they
    have ended; their results and exceptions are dropped (the caller has what it
    needed from them, or is leaving)."""
    pending = [f for f in futures if f is not None]
    for f in pending:
        f.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def wait_out(aw: Awaitable[T], on_cancel: Callable[[], None] | None = None) -> T:
    """The result of aw, awaited to its end even when the caller is cancelled (any
    number of times: on_cancel() is called at each, aw itself is not cancelled);
    a cancellation is raised once aw is over."""
    fut = asyncio.ensure_future(aw)
    cancelled = False
    while not fut.done():
        try:
            await asyncio.wait([fut])
        except asyncio.CancelledError:
            cancelled = True
            if on_cancel is not None:
                on_cancel()
    if cancelled:
        if not fut.cancelled():
            fut.exception()             # retrieved: the cancellation wins
        raise asyncio.CancelledError()
    return fut.result()



async def for_each(items: Iterable[T], fn: Callable[[T], Awaitable[None]], limit: int) -> None:
    """await fn(item) for every item, at most `limit` at a time. Every item is attempted;
    then the first failure, in item order, is raised."""
    sem = asyncio.Semaphore(limit)

    async def one(item: T) -> None:
        async with sem:
            await fn(item)
    results = await asyncio.gather(*(one(i) for i in items), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r


_STARTED = object()


class _Rest(Coroutine[Any, Any, None]):
    """A coroutine that already ran its first step, as the coroutine of the task
    that runs the rest: the task's first send gets what the coroutine yielded (the
    future it waits for); every other send and every throw (a cancellation, even
    one before the task's first step) goes straight to the coroutine."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self.coro, self.first = coro, first

    def send(self, value: Any) -> Any:
        first = self.first
        if first is _STARTED:
            return self.coro.send(value)
        self.first = _STARTED
        return first

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.first = _STARTED
        if val is None and tb is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        raise TypeError("the rest of a stepped coroutine is a task's, never awaited")

    @property
    def cr_frame(self) -> Any:      # a task's stack (Task.get_stack) is the coroutine's
        coro = self.coro
        return coro.cr_frame if isinstance(coro, types.CoroutineType) else None

    def __repr__(self) -> str:
        return f"<rest of {self.coro!r}>"
