"""What the services report for the Prometheus metrics (--metrics-addr): small
role interfaces with do-nothing defaults.

A service that has something to measure takes one of these Protocols through
its constructor; the daemon passes the Prometheus-backed ones of metrics/ when
--metrics-addr is set and the NO_* defaults otherwise, so no service imports
metrics/ (nor prometheus_client, which the daemon loads only when asked).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Protocol


class ActionTimer(Protocol):
    """How long an action took (engine_daemon_{container,network}_actions_seconds)."""

    def observe(self, action: str, seconds: float) -> None: ...


class HealthChecks(Protocol):
    """One health probe ran (engine_daemon_health_checks{,_failed}_total); `failed`:
    it could not give a result (the exec failed or timed out), as dockerd counts it,
    not a non-zero exit code."""

    def checked(self, failed: bool) -> None: ...


class BuildCounters(Protocol):
    """builder_builds_triggered_total and builder_builds_failed_total{reason}."""

    def triggered(self) -> None: ...
    def failed(self, reason: str) -> None: ...


class _NoTimer:
    def observe(self, action: str, seconds: float) -> None:
        pass


class _NoHealthChecks:
    def checked(self, failed: bool) -> None:
        pass


class _NoBuildCounters:
    def triggered(self) -> None:
        pass

    def failed(self, reason: str) -> None:
        pass


NO_TIMER: ActionTimer = _NoTimer()
NO_HEALTH_CHECKS: HealthChecks = _NoHealthChecks()
NO_BUILD_COUNTERS: BuildCounters = _NoBuildCounters()


@dataclass(frozen=True)
class Instruments:
    """What the daemon hands the services (each gets the one it reports to)."""
    container_actions: ActionTimer = NO_TIMER
    network_actions: ActionTimer = NO_TIMER
    health_checks: HealthChecks = NO_HEALTH_CHECKS
    builds: BuildCounters = NO_BUILD_COUNTERS


@contextmanager
def timed(timer: ActionTimer, action: str) -> Iterator[None]:
    """Observe the duration of the block when it succeeds (as dockerd: a failed
    start or create is not timed)."""
    start = time.monotonic()
    yield
    timer.observe(action, time.monotonic() - start)


__all__ = ["Instruments", "ActionTimer", "HealthChecks", "BuildCounters", "NO_TIMER", "NO_HEALTH_CHECKS",
           "NO_BUILD_COUNTERS", "timed"]
