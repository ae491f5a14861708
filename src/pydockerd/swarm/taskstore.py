"""The worker's task store: every task assigned to this node with the status
we last reported, one protobuf file per task under <data-root>/swarm/tasks.
It outlives a daemon restart so that a task is never run twice and its status
never goes backwards: at start the executor resumes each task from its stored
status (a container that kept running is adopted, one that exited is reported
as such). Secrets and configs are never stored here (they live in memory)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..util.fsatomic import write_atomic
from .proto import swarmkit_pb2 as pb

log = logging.getLogger("pydockerd.swarm")


class TaskStore:
    def __init__(self, swarm_dir: Path) -> None:
        self.dir = swarm_dir / "tasks"

    def load(self) -> dict[str, pb.Task]:
        out: dict[str, pb.Task] = {}
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        for name in names:
            if not name.endswith(".pb"):
                continue
            try:
                t = pb.Task.FromString((self.dir / name).read_bytes())
            except (OSError, ValueError) as e:      # DecodeError is a ValueError
                log.warning("swarm: unreadable task record %s: %s", name, e)
                continue
            out[t.id] = t
        return out

    def save(self, t: pb.Task) -> None:
        """The task as assigned, with our own status in `status`."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(str(self.dir / f"{t.id}.pb"), t.SerializeToString(), mode=0o600)

    def remove(self, task_id: str) -> None:
        try:
            os.unlink(self.dir / f"{task_id}.pb")
        except FileNotFoundError:
            pass
