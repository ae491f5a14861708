"""Pulls that need the same layer at the same time (two images sharing a layer,
or one image pulled twice at once): daemon-wide bookkeeping, in the event loop.

- exactly one pull starts making a layer (download and unpack), in a task of
  the flight's own, not of that pull: `make` says who; every pull that needs
  the layer, the starter too, `join`s the flight: it shows its progress (from
  its latest event on), as dockerd's watchers of one transfer do, and waits
  for its end. The making goes on while any pull waits for it (the starter's
  client may go away), and is cancelled, and waited out, when the last one
  leaves; if it fails, the starter fails with its error and the next waiting
  pull makes the layer again, the others joining that making;
- the layer made is handed to one pull that saw the making end (the last one
  to leave, when cancelled), which counts it among the layers it made;
- every pull holds the layers of its image (`claim`) until it ends; a failed pull
  drops the layers it made, except those another pull holds: they are handed to
  that pull (dropped if it fails in turn, kept by its image if it succeeds), so
  no pull ever registers an image over a layer another pull just removed;
- a pull that claims a layer being dropped waits for the drop to end before it
  looks whether the layer exists.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Coroutine

from ..progress import ProgressEvent
from ..util.tasks import wait_out

Emit = Callable[[ProgressEvent], None]


class Claim:
    """One pull's hold on its image's layers (chain ids), and the layers it made."""

    def __init__(self, chains: list[str]) -> None:
        self.chains = chains
        self.created: list[str] = []      # appended to by unpack threads and hand-overs


class Flight:
    """A layer being made, in a task of its own, for every pull that joins it."""

    def __init__(self, chain: str) -> None:
        self.made = Claim([chain])        # its `created`: the layer, once registered
        self.task: asyncio.Task[None] | None = None
        self._watchers: list[Emit] = []
        self._last: ProgressEvent | None = None

    def emit(self, ev: ProgressEvent) -> None:
        """The making's progress of this layer, shown to every pull that joined."""
        self._last = ev
        for w in list(self._watchers):
            w(ev)

    async def join(self, emit: Emit, claim: Claim) -> BaseException | None:
        """Show the making's progress through emit until it ends; its error (None:
        it went well; CancelledError: everyone had left). Cancelled, the last pull
        to leave cancels the making and waits it out. A layer the making registered
        goes to claim.created of the first pull that sees it end."""
        task = self.task
        assert task is not None
        if self._last is not None:
            emit(self._last)
        self._watchers.append(emit)
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            self._watchers.remove(emit)
            if not self._watchers:        # nobody waits for it any more
                task.cancel()
                try:
                    await wait_out(asyncio.wait([task]))
                finally:
                    if task.done() and not task.cancelled():
                        task.exception()  # retrieved: this pull's cancellation wins
                    self._hand(claim)
            raise
        self._watchers.remove(emit)
        self._hand(claim)
        return asyncio.CancelledError() if task.cancelled() else task.exception()

    def _hand(self, claim: Claim) -> None:
        if self.task is not None and self.task.done() and self.made.created:
            claim.created.extend(self.made.created)
            self.made.created = []


class LayerFlights:
    def __init__(self) -> None:
        self._holders: dict[str, list[Claim]] = {}
        self._making: dict[str, Flight] = {}
        self._dropping: dict[str, asyncio.Future[None]] = {}

    def claim(self, chains: list[str]) -> Claim:
        """Hold chains for a pull, until its `release`; then wait for `cleared`.
        From here on another failed pull may hand layers over to it: whatever
        happens next (a cancel during `cleared` too), the pull must `release`."""
        c = Claim(chains)
        for ch in chains:
            self._holders.setdefault(ch, []).append(c)
        return c

    async def cleared(self, c: Claim) -> None:
        """Returns once no drop of any of the claim's chains is under way."""
        while pending := [self._dropping[ch] for ch in c.chains if ch in self._dropping]:
            await asyncio.wait(pending)

    def make(self, chain: str, work: Callable[[Flight], Coroutine[object, object, None]]
             ) -> tuple[Flight, bool]:
        """The flight making chain, and whether it was started now: if no pull is
        making it, work(flight) is started as its task (it reports progress through
        flight.emit and puts the layer it registers in flight.made). Join it."""
        if (other := self._making.get(chain)) is not None:
            return other, False
        mine = self._making[chain] = Flight(chain)
        mine.task = asyncio.create_task(work(mine))
        mine.task.add_done_callback(lambda _: self._landed(chain, mine))
        return mine, True

    def _landed(self, chain: str, flight: Flight) -> None:
        """The making of chain is over (made, failed or cancelled)."""
        if self._making.get(chain) is flight:
            del self._making[chain]

    def release(self, c: Claim, failed: bool) -> list[str]:
        """The pull ended. On failure: the layers it made that no other pull holds,
        to be dropped (then call `dropped`); the others go to a pull holding them."""
        for ch in c.chains:
            holders = self._holders.get(ch, [])
            if c in holders:
                holders.remove(c)
            if not holders:
                self._holders.pop(ch, None)
        if not failed:
            return []
        doomed: list[str] = []
        for ch in c.created:
            if holders := self._holders.get(ch, []):
                holders[0].created.append(ch)
            else:
                doomed.append(ch)
                self._dropping.setdefault(ch, asyncio.get_running_loop().create_future())
        c.created = []
        return doomed

    def dropped(self, chains: list[str]) -> None:
        for ch in chains:
            fut = self._dropping.pop(ch, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
