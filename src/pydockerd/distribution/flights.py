"""Pulls that need the same layer at the same time (two images sharing a layer,
or one image pulled twice at once): daemon-wide bookkeeping, in the event loop.

- exactly one pull makes a layer (downloads and unpacks it): `make` says who;
  the others wait for it and, once it is there, use it; meanwhile they show the
  maker's progress of that layer (from its latest event on), as dockerd's
  watchers of one transfer do; if the maker fails or is cancelled, the next
  waiter makes it;
- every pull holds the layers of its image (`claim`) until it ends; a failed pull
  drops the layers it made, except those another pull holds: they are handed to
  that pull (dropped if it fails in turn, kept by its image if it succeeds), so
  no pull ever registers an image over a layer another pull just removed;
- a pull that claims a layer being dropped waits for the drop to end before it
  looks whether the layer exists.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from ..progress import ProgressEvent

Emit = Callable[[ProgressEvent], None]


class Claim:
    """One pull's hold on its image's layers (chain ids), and the layers it made."""

    def __init__(self, chains: list[str]) -> None:
        self.chains = chains
        self.created: list[str] = []      # appended to by unpack threads and hand-overs


class Flight:
    """A layer one pull is making: done when that pull is over with it."""

    def __init__(self) -> None:
        self.over: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers: list[Emit] = []
        self._last: ProgressEvent | None = None

    def emit(self, ev: ProgressEvent) -> None:
        """The maker's progress of this layer, also shown to every waiting pull."""
        self._last = ev
        for w in list(self._watchers):
            w(ev)

    async def watch(self, emit: Emit) -> None:
        """Show this layer's progress through emit until the maker is over with it."""
        if self._last is not None:
            emit(self._last)
        self._watchers.append(emit)
        try:
            await asyncio.wait([self.over])
        finally:
            self._watchers.remove(emit)


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

    def make(self, chain: str) -> tuple[Flight, bool]:
        """(flight, True): the caller makes the layer now, reports its progress
        through flight.emit and calls `landed` when it is over. (flight, False):
        another pull makes it (flight.watch)."""
        if (other := self._making.get(chain)) is not None:
            return other, False
        mine = self._making[chain] = Flight()
        return mine, True

    def landed(self, chain: str) -> None:
        """The maker of chain is over with it (made, failed or cancelled)."""
        flight = self._making.pop(chain, None)
        if flight is not None and not flight.over.done():
            flight.over.set_result(None)

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
