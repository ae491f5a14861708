"""util.tasks.for_each: bounded concurrency, every item attempted, first failure raised."""
from __future__ import annotations

import asyncio

import pytest

from pydockerd.util.tasks import for_each


def test_for_each_bounds_concurrency_and_raises_first_failure() -> None:
    running = peak = 0
    done: list[int] = []

    async def fn(i: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if i in (3, 7):
            raise ValueError(f"item {i}")
        done.append(i)

    with pytest.raises(ValueError, match="item 3"):
        asyncio.run(for_each(range(20), fn, 4))
    assert peak == 4
    assert sorted(done) == [i for i in range(20) if i not in (3, 7)]
