"""When the node certificate is renewed: at a random minute between 50 % and
80 % of its validity (SwarmKit's calculateRandomExpiry, so that the nodes of a
swarm do not all renew at once), at once when it has expired, and soon (half a
second, as SwarmKit) when the manager asks (a root rotation marks the node's
certificate ROTATE). A failed renewal is retried with a growing delay. Nothing
of gRPC here: the renewal itself is the agent's callback."""
from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

log = logging.getLogger("pydockerd.swarm")

LOWER, UPPER = 0.5, 0.8          # SwarmKit's CertLowerRotationRange/CertUpperRotationRange
FORCED_DELAY = 0.5
BACKOFF_BASE, BACKOFF_MAX = 5.0, 3600.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def renewal_delay(not_before: datetime, not_after: datetime, now: datetime,
                  rng: random.Random) -> float:
    """Seconds from `now` until the renewal of a certificate valid from
    `not_before` to `not_after`: a whole random minute in [50 %, 80 %) of its
    validity after `not_before`; 0 when that point has passed."""
    minutes = (not_after - not_before).total_seconds() / 60
    lo, hi = int(minutes * LOWER), int(minutes * UPPER)
    pick = lo if hi - lo < 1 else rng.randrange(lo, hi)
    return max(0.0, (not_before + timedelta(minutes=pick) - now).total_seconds())


def backoff(failures: int, base: float = BACKOFF_BASE) -> float:
    return 0.0 if failures <= 0 else min(base * 2 ** (failures - 1), BACKOFF_MAX)


class Renewer:
    """Runs `renew` whenever the certificate `validity` returns is due, or when
    asked with `request()`; `renew` raising counts as a failure."""

    def __init__(self, validity: Callable[[], tuple[datetime, datetime]],
                 renew: Callable[[], Awaitable[None]],
                 now: Callable[[], datetime] = utcnow, rng: random.Random | None = None,
                 forced_delay: float = FORCED_DELAY, backoff_base: float = BACKOFF_BASE
                 ) -> None:
        self.validity = validity
        self.renew = renew
        self.now = now
        self.rng = rng or random.Random()
        self.forced_delay = forced_delay
        self.backoff_base = backoff_base
        self.next_at: datetime | None = None
        self.renewals = 0
        self._asked = asyncio.Event()

    def request(self) -> None:
        """Renew soon (the manager asked); several requests make one renewal."""
        self._asked.set()

    def _delay(self, failures: int, forced: bool) -> float:
        not_before, not_after = self.validity()
        now = self.now()
        if forced or not_after <= now:
            return backoff(failures, self.backoff_base)
        return renewal_delay(not_before, not_after, now, self.rng)

    async def run(self) -> None:
        failures, forced = 0, False
        while True:
            delay = self._delay(failures, forced)
            self.next_at = self.now() + timedelta(seconds=delay)
            log.info("swarm: next certificate renewal at %s", self.next_at.isoformat())
            try:
                await asyncio.wait_for(self._asked.wait(), delay)
                forced = True
                await asyncio.sleep(self.forced_delay)
            except asyncio.TimeoutError:
                pass
            self._asked.clear()
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception as e:          # any failure: retried later
                failures += 1
                forced = True
                log.warning("swarm: certificate renewal failed (attempt %d): %s",
                            failures, e)
                continue
            failures, forced = 0, False
            self.renewals += 1
            self._asked.clear()     # asked meanwhile: the new certificate answers it
