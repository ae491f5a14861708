"""Pulls that need the same layer at the same time (two images sharing a layer,
or one image pulled twice at once): daemon-wide bookkeeping, in the event loop.

- exactly one pull makes a layer (downloads and unpacks it): `make` says who;
  the others wait for it (`Waiting`) and, once it is there, use it; if the maker
  fails or is cancelled, the next waiter makes it;
- every pull holds the layers of its image (`claim`) until it ends; a failed pull
  drops the layers it made, except those another pull holds: they are handed to
  that pull (dropped if it fails in turn, kept by its image if it succeeds), so
  no pull ever registers an image over a layer another pull just removed;
- a pull that claims a layer being dropped waits for the drop to end before it
  looks whether the layer exists.
"""
from __future__ import annotations

import asyncio


class Claim:
    """One pull's hold on its image's layers (chain ids), and the layers it made."""

    def __init__(self, chains: list[str]) -> None:
        self.chains = chains
        self.created: list[str] = []      # appended to by unpack threads and hand-overs


class LayerFlights:
    def __init__(self) -> None:
        self._holders: dict[str, list[Claim]] = {}
        self._making: dict[str, asyncio.Future[None]] = {}
        self._dropping: dict[str, asyncio.Future[None]] = {}

    async def claim(self, chains: list[str]) -> Claim:
        """Hold chains for a pull; returns once no drop of any of them is under way."""
        c = Claim(chains)
        for ch in chains:
            self._holders.setdefault(ch, []).append(c)
        try:
            while pending := [self._dropping[ch] for ch in chains if ch in self._dropping]:
                await asyncio.wait(pending)
        except BaseException:
            self.release(c, failed=False)
            raise
        return c

    def make(self, chain: str) -> asyncio.Future[None] | None:
        """None: the caller makes the layer now and calls `landed` when it is over.
        Else the pull making it: the future is done when that pull is over with it."""
        other = self._making.get(chain)
        if other is None:
            self._making[chain] = asyncio.get_running_loop().create_future()
        return other

    def landed(self, chain: str) -> None:
        """The maker of chain is over with it (made, failed or cancelled)."""
        fut = self._making.pop(chain, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

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
