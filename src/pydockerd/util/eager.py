"""Run a coroutine at once, on the caller's stack, until it first suspends.

Most API requests (`/_ping`, `GET /containers/json`, inspect) never wait for
anything: run eagerly, their answer is written in the same event-loop callback
that read the request, with no Task and no extra loop iteration. A coroutine
that does suspend is handed to a Task that goes on from where it stopped
(Python 3.12's eager tasks, done with the public coroutine protocol so that
3.11 has it too).

While the eager part runs there is no current task: code that needs one
(`asyncio.timeout`, `current_task()`) must not run before the first await.
"""
from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class Suspended:
    """A coroutine that yielded `first` (the future it waits for) when run eagerly."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first


def step(coro: Coroutine[Any, Any, T]) -> T | Suspended:
    """Run `coro` until it returns (its value) or suspends (a Suspended to resume)."""
    try:
        first = coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    return Suspended(coro, first)


class _GoOn:
    """Awaitable that drives a suspended coroutine inside a Task: it yields what the
    coroutine yields (the Task waits on it) and passes back what the Task sends or
    throws (a cancellation), as `await coro` would have from the start."""

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


async def resume(s: Suspended) -> Any:
    """The rest of a suspended coroutine, to run as a Task."""
    return await _GoOn(s)


def run_eagerly(coro: Coroutine[Any, Any, T],
                spawn: Callable[[Coroutine[Any, Any, Any]], Any]) -> T | Suspended:
    """step(), and if the coroutine suspended, spawn(resume(...)) to finish it."""
    out = step(coro)
    if isinstance(out, Suspended):
        spawn(resume(out))
    return out
