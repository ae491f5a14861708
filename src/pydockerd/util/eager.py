"""Start a task eagerly: its first step runs at once, on the caller's stack.

Most API requests (`/_ping`, `GET /containers/json`, inspect) never wait for
anything: started eagerly, their answer is written in the same event-loop
callback that read the request, with no loop iteration in between. This is
Python 3.12's eager task start, done here for 3.11 too: the Task exists first
and is the current task while its coroutine runs up to its first suspension
(so `asyncio.timeout`, aiohttp's timers and `current_task()` work), then the
Task goes on from there. A coroutine that ended in that first step leaves the
Task only its result to return.
"""
from __future__ import annotations

import asyncio
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class Suspended:
    """A coroutine's first step ended by waiting (`first` is what it yielded)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first


class _Failed(Suspended):
    """The first step raised: the task raises it (the caller waits for the task)."""

    __slots__ = ("error",)

    def __init__(self, coro: Coroutine[Any, Any, Any], error: BaseException) -> None:
        super().__init__(coro, None)
        self.error = error


class _Slot:
    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out: Any = None


class _GoOn:
    """Drives a suspended coroutine inside a Task: yields what the coroutine yields
    (the Task waits on it) and hands back what the Task sends or throws (a
    cancellation), as `await coro` would have from the start."""

    def __init__(self, s: Suspended) -> None:
        self._s = s

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._s.coro, self._s.first
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


async def _rest(slot: _Slot) -> Any:
    out = slot.out
    if isinstance(out, _Failed):
        raise out.error
    if isinstance(out, Suspended):
        return await _GoOn(out)
    return out


def start(coro: Coroutine[Any, Any, T],
          spawn: Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]
          ) -> tuple["asyncio.Task[T]", T | Suspended]:
    """Spawn a task for `coro` and run its first step now, as that task. Returns the
    task and the coroutine's result, or a Suspended when it waits or failed (the
    task's outcome is then what counts)."""
    slot = _Slot()
    task = spawn(_rest(slot))
    loop = task.get_loop()
    _enter_task(loop, task)
    try:
        first = coro.send(None)
    except StopIteration as done:
        slot.out = done.value
    except BaseException as e:  # noqa: BLE001 - raised by the task, as it would have been
        slot.out = _Failed(coro, e)
    else:
        slot.out = Suspended(coro, first)
    finally:
        _leave_task(loop, task)
    return task, slot.out
