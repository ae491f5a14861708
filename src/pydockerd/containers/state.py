"""The container state machine: created, running, paused, restarting, removing,
exited, dead.

`State` is immutable: a transition returns a new State (the registry stores it
and only then puts it in memory), and an invalid one raises Conflict with
dockerd's wording. The `check_*` methods answer "may this verb run now?" for
verbs that change no state by themselves (they raise the same Conflicts).

    created ──start──▶ running ⇄ paused          (pause / unpause)
       ▲                 │ exit (also from paused)
       │                 ▼
    (start failed)    exited ──policy──▶ restarting ──start──▶ running
                         │                  │ stop / kill / rm -f
                         │ ◀────────────────┘
                         ▼
    created/exited/dead ──rm──▶ removing ──(failed)──▶ dead
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import Conflict, NotModified
from ..util.ids import ZERO_TIME, now_rfc3339

STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
HEALTH_LOG_MAX = 5


@dataclass(frozen=True)
class Health:
    status: str = "starting"            # starting, healthy, unhealthy
    failing_streak: int = 0
    log: tuple[dict[str, Any], ...] = ()

    def probed(self, result: dict[str, Any], retries: int, in_start_period: bool) -> "Health":
        """The health after one probe result (dockerd's rules)."""
        log = (*self.log, result)[-HEALTH_LOG_MAX:]
        if result["ExitCode"] == 0:
            return Health("healthy", 0, log)
        if in_start_period and self.status == "starting":
            return Health(self.status, self.failing_streak, log)
        streak = self.failing_streak + 1
        return Health("unhealthy" if streak >= retries else self.status, streak, log)


@dataclass(frozen=True)
class State:
    status: str = "created"
    pid: int = 0
    conmon_pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: Health | None = field(default=None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "State":
        d = dict(d)
        h = d.pop("health", None)
        health = Health(h["status"], int(h.get("failing_streak") or 0),
                        tuple(h.get("log") or ())) if h else None
        return cls(**d, health=health)

    @property
    def running(self) -> bool:
        """Running or paused: a process exists."""
        return self.status in ("running", "paused")

    def _bad(self, verb: str) -> Conflict:
        return Conflict(f"cannot {verb} a container that is {self.status}")

    # ---- checks for verbs --------------------------------------------------------

    def check_start(self) -> None:
        """Raises NotModified when running, Conflict when it cannot start."""
        if self.status == "paused":
            raise Conflict("cannot start a paused container, try unpause instead")
        if self.status == "running":
            raise NotModified("container already started")
        if self.status in ("removing", "dead"):
            raise Conflict("container is marked for removal and cannot be started")

    def check_kill(self, cid: str) -> None:
        if not self.running:
            raise Conflict(f"Container {cid} is not running")

    def check_pause(self, cid: str) -> None:
        if self.status == "paused":
            raise Conflict(f"Container {cid} is already paused")
        if self.status == "restarting":
            raise Conflict(f"Container {cid} is restarting, wait until the container is "
                           "running")
        if self.status != "running":
            raise Conflict(f"Container {cid} is not running")

    def check_unpause(self, cid: str) -> None:
        if self.status != "paused":
            raise Conflict(f"Container {cid} is not paused")

    def check_exec(self, cid: str) -> None:
        if self.status == "paused":
            raise Conflict(f"Container {cid} is paused, unpause the container before exec")
        if self.status == "restarting":
            raise Conflict(f"Container {cid} is restarting, wait until the container is "
                           "running")
        if self.status != "running":
            raise Conflict(f"Container {cid} is not running")

    def check_remove(self, name: str, force: bool) -> None:
        """Without force only a stopped container goes; a removal runs only once."""
        if self.status == "removing":
            raise Conflict(f"removal of container {name} is already in progress")
        if not force and self.status in ("running", "paused", "restarting"):
            raise Conflict(f"cannot remove container \"/{name}\": container is {self.status}: "
                           "stop the container before removing or force remove")

    def check_update(self, cid: str) -> None:
        if self.status in ("removing", "dead"):
            raise Conflict(f"Cannot update container {cid}: container is marked for removal "
                           "and cannot be \"update\"")

    def check_attach(self, ref: str) -> bool:
        """True: attach now; False: wait for the next start. `ref` is the name or id
        the client gave (dockerd's messages name it)."""
        if self.status == "paused":
            raise Conflict(f"container {ref} is paused, unpause the container before attach")
        if self.status == "restarting":
            raise Conflict(f"container {ref} is restarting, wait until the container is "
                           "running")
        if self.running:
            return True
        if self.status in ("removing", "dead"):
            raise Conflict("You cannot attach to a stopped container, start it first")
        return False

    # ---- transitions -------------------------------------------------------------

    def check_runnable(self) -> None:
        """A run may begin now (created, exited, or waiting to restart)."""
        if self.status not in ("created", "exited", "restarting"):
            self.check_start()
            raise self._bad("start")

    def started(self, pid: int, conmon_pid: int) -> "State":
        self.check_runnable()
        return State("running", pid, conmon_pid, 0, "", False, now_rfc3339(), ZERO_TIME,
                     self.health)

    def start_failed(self, error: str, exit_code: int) -> "State":
        """A start that did not get a process: created stays created (as dockerd)."""
        if self.status not in ("created", "exited", "restarting"):
            raise self._bad("fail the start of")
        status = "created" if self.status == "created" else "exited"
        return dataclasses.replace(self, status=status, pid=0, conmon_pid=0,
                                   exit_code=exit_code, error=error)

    def exited(self, exit_code: int, oom: bool = False, error: str = "") -> "State":
        if self.status not in ("running", "paused", "restarting"):
            raise self._bad("record the exit of")
        return dataclasses.replace(self, status="exited", pid=0, conmon_pid=0,
                                   exit_code=exit_code, oom_killed=oom, error=error,
                                   finished_at=now_rfc3339())

    def paused(self, cid: str) -> "State":
        self.check_pause(cid)
        return dataclasses.replace(self, status="paused")

    def unpaused(self, cid: str) -> "State":
        self.check_unpause(cid)
        return dataclasses.replace(self, status="running")

    def restarting(self) -> "State":
        if self.status != "exited":
            raise self._bad("schedule a restart of")
        return dataclasses.replace(self, status="restarting")

    def restart_cancelled(self) -> "State":
        if self.status != "restarting":
            raise self._bad("cancel the restart of")
        return dataclasses.replace(self, status="exited")

    def removing(self, name: str) -> "State":
        self.check_remove(name, force=False)
        return dataclasses.replace(self, status="removing")

    def dead(self, error: str) -> "State":
        if self.status != "removing":
            raise self._bad("mark dead")
        return dataclasses.replace(self, status="dead", error=error)

    def with_health(self, health: Health | None) -> "State":
        return dataclasses.replace(self, health=health)
