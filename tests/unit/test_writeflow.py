"""util/writeflow.py: writers waiting while the transport's buffer is full."""
from __future__ import annotations

import asyncio

from pydockerd.util.writeflow import WriteFlow


def test_every_concurrent_waiter_is_woken_by_resume() -> None:
    async def main() -> None:
        flow = WriteFlow()
        flow.pause()
        waits = [asyncio.ensure_future(flow.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waits)
        flow.resume()
        await asyncio.wait_for(asyncio.gather(*waits), 2)
    asyncio.run(main())


def test_a_cancelled_waiter_leaves_the_others_waiting_and_release_wakes_them() -> None:
    async def main() -> None:
        flow = WriteFlow()
        flow.pause()
        first, second = (asyncio.ensure_future(flow.wait()) for _ in range(2))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        assert first.cancelled() and not second.done()
        third = asyncio.ensure_future(flow.wait())
        await asyncio.sleep(0)
        flow.release()                      # ends the wait without resuming
        await asyncio.wait_for(asyncio.gather(second, third), 2)
        assert flow.paused
        later = asyncio.ensure_future(flow.wait())   # a new wait after a release waits
        await asyncio.sleep(0.01)
        assert not later.done()
        flow.resume()
        await asyncio.wait_for(later, 2)
    asyncio.run(main())
