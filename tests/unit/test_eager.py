"""util/eager.py: coroutines run at once, inside a pooled worker task."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pydockerd.util import eager
from pydockerd.util.tasks import TaskOwner


def in_callback(fn: Any) -> Any:
    """Run fn() from a plain loop callback (as a protocol's data_received), return its value."""
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def cb() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the test
                fut.set_exception(e)
        loop.call_soon(cb)
        return await fut
    return asyncio.run(main())


def test_a_coroutine_that_never_waits_runs_at_once_in_a_reused_task() -> None:
    seen: list[asyncio.Task[Any] | None] = []

    async def quick(n: int) -> int:
        seen.append(asyncio.current_task())
        return n * 2

    def go() -> list[Any]:
        runner = eager.Runner(TaskOwner("t"), "t")
        return [runner.start(quick(i), lambda r, e: None) for i in range(3)]
    assert in_callback(go) == [0, 2, 4]
    assert seen[0] is not None and seen.count(seen[0]) == 3     # one worker, reused


def test_a_waiting_coroutine_goes_on_in_the_same_task_and_reports_its_end() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        runner = eager.Runner(TaskOwner("t"), "t")
        ended: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        tasks: list[Any] = []

        async def slow() -> str:
            tasks.append(asyncio.current_task())
            async with asyncio.timeout(5):            # needs a task from the first step
                await asyncio.sleep(0.01)
            tasks.append(asyncio.current_task())
            return "done"
        out: list[Any] = []
        loop.call_soon(lambda: out.append(runner.start(
            slow(), lambda r, e: ended.set_result((r, e)))))
        assert await asyncio.wait_for(ended, 5) == ("done", None)
        assert isinstance(out[0], eager.Suspended) and tasks == [out[0].task, out[0].task]
        runner.close()
    asyncio.run(main())


def test_a_timeout_set_in_the_first_step_fires_after_it() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        runner = eager.Runner(TaskOwner("t"), "t")
        ended: asyncio.Future[tuple[Any, Any]] = loop.create_future()

        async def stuck() -> str:
            try:
                async with asyncio.timeout(0.05):
                    await asyncio.sleep(60)
            except TimeoutError:
                return "timed out"
            return "slept"
        loop.call_soon(lambda: runner.start(stuck(), lambda r, e: ended.set_result((r, e))))
        assert await asyncio.wait_for(ended, 5) == ("timed out", None)
        runner.close()
    asyncio.run(main())


def test_cancelling_the_task_cancels_the_coroutine() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        runner = eager.Runner(TaskOwner("t"), "t")
        ended: asyncio.Future[tuple[Any, Any]] = loop.create_future()

        async def forever() -> None:
            await asyncio.sleep(3600)
        out: list[Any] = []
        loop.call_soon(lambda: out.append(runner.start(
            forever(), lambda r, e: ended.set_result((r, e)))))
        await asyncio.sleep(0.01)
        out[0].task.cancel()
        _, error = await asyncio.wait_for(ended, 5)
        assert isinstance(error, asyncio.CancelledError)
        runner.close()
    asyncio.run(main())


def test_a_first_step_error_is_raised_to_the_caller() -> None:
    async def bad() -> None:
        raise ValueError("boom")

    def go() -> Any:
        return eager.Runner(TaskOwner("t"), "t").start(bad(), lambda r, e: None)
    with pytest.raises(ValueError, match="boom"):
        in_callback(go)


def test_idle_workers_end_at_close_and_when_cancelled() -> None:
    async def main() -> None:
        owner = TaskOwner("t")
        runner = eager.Runner(owner, "t")

        async def quick() -> int:
            return 1
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: runner.start(quick(), lambda r, e: None))
        await asyncio.sleep(0.01)
        assert len(owner) == 1
        runner.close()
        await asyncio.wait_for(owner.close(grace=5), 5)
    asyncio.run(main())

    async def leave_idle() -> None:              # asyncio.run's teardown cancels it
        runner = eager.Runner(TaskOwner("t"), "t")

        async def quick() -> int:
            return 1
        asyncio.get_running_loop().call_soon(lambda: runner.start(quick(), lambda r, e: None))
        await asyncio.sleep(0.01)
    asyncio.run(asyncio.wait_for(leave_idle(), 5))
