"""Restart policies: the one place that decides whether a container starts again,
after an exit while the daemon runs and at daemon start, and the back-off delay.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0   # a run this long resets the back-off, as in dockerd


def _policy_allows(policy: dict[str, Any], exit_code: int, restart_count: int) -> bool:
    """dockerd's restart manager: `always` and `unless-stopped` restart; `on-failure[:N]`
    after a non-zero exit while fewer than N restarts were made (N = 0: no limit)."""
    name = policy.get("Name") or "no"
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        limit = int(policy.get("MaximumRetryCount") or 0)
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def wants_restart(policy: dict[str, Any], exit_code: int, restart_count: int,
                  manually_stopped: bool) -> bool:
    """After an exit while the daemon runs: never when the user stopped it."""
    return not manually_stopped and _policy_allows(policy, exit_code, restart_count)


def restart_at_daemon_start(policy: dict[str, Any], exit_code: int, restart_count: int,
                            manually_stopped: bool, has_been_started: bool) -> bool:
    """A stopped container found at daemon start (one that ran before): `always`
    starts even when the user stopped it, `unless-stopped` only when not, and
    `on-failure` by its exit code and restart count, as dockerd's restore does."""
    if not has_been_started:
        return False
    if (policy.get("Name") or "no") == "unless-stopped" and manually_stopped:
        return False
    return _policy_allows(policy, exit_code, restart_count)


@dataclass
class Backoff:
    """The delay before the next restart: doubles while runs stay short."""
    delay: float = 0.0

    def next(self, ran_for: float) -> float:
        self.delay = BACKOFF_START if ran_for >= RESET_AFTER or not self.delay \
            else min(self.delay * 2, BACKOFF_MAX)
        return self.delay
