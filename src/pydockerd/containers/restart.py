"""Restart policies: whether to restart after an exit, and the back-off delay."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0   # a run this long resets the back-off, as in dockerd


@dataclass
class RestartManager:
    delay: float = 0.0

    def should_restart(self, policy: dict[str, Any], exit_code: int, restart_count: int,
                       manually_stopped: bool, ran_for: float) -> bool:
        name = policy.get("Name") or "no"
        if manually_stopped or name == "no":
            return False
        if name == "on-failure":
            if exit_code == 0:
                return False
            limit = int(policy.get("MaximumRetryCount") or 0)
            if limit and restart_count >= limit:
                return False
        self.delay = BACKOFF_START if ran_for >= RESET_AFTER or not self.delay \
            else min(self.delay * 2, BACKOFF_MAX)
        return True
