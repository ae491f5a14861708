"""Assignment chaining: the dispatcher's Assignments stream starts with a
COMPLETE set (every task, secret and config of the node) and goes on with
INCREMENTAL changes, each applying to the set the previous one resulted in.
A change that does not chain means a message was missed: the stream is
reopened for a new COMPLETE set (SwarmKit's agent does the same)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .proto import swarmkit_pb2 as pb


class AssignmentGap(Exception):
    """An INCREMENTAL set that does not apply to the set we have."""


@dataclass
class Changes:
    complete: bool = False                  # a full set: what is not in it is gone
    tasks: dict[str, pb.Task] = field(default_factory=dict)
    removed_tasks: set[str] = field(default_factory=set)
    secrets: dict[str, pb.Secret] = field(default_factory=dict)
    removed_secrets: set[str] = field(default_factory=set)
    configs: dict[str, pb.Config] = field(default_factory=dict)
    removed_configs: set[str] = field(default_factory=set)


@dataclass
class AssignmentChain:
    last: str = ""          # results_in of the last message applied
    started: bool = False

    def reset(self) -> None:
        """A new stream: the next message must be a COMPLETE set."""
        self.last, self.started = "", False

    def apply(self, msg: pb.AssignmentsMessage) -> Changes:
        if msg.type == pb.AssignmentsMessage.INCREMENTAL:
            if not self.started or msg.applies_to != self.last:
                raise AssignmentGap(f"assignments apply to {msg.applies_to!r}, we have "
                                    f"{self.last!r}")
        self.started = True
        self.last = msg.results_in
        out = Changes(complete=msg.type == pb.AssignmentsMessage.COMPLETE)
        for ch in msg.changes:
            a = ch.assignment
            remove = ch.action == pb.AssignmentChange.REMOVE
            kind = a.WhichOneof("item")
            if kind == "task":
                if remove:
                    out.removed_tasks.add(a.task.id)
                    out.tasks.pop(a.task.id, None)
                else:
                    out.tasks[a.task.id] = a.task
            elif kind == "secret":
                if remove:
                    out.removed_secrets.add(a.secret.id)
                else:
                    out.secrets[a.secret.id] = a.secret
            elif kind == "config":
                if remove:
                    out.removed_configs.add(a.config.id)
                else:
                    out.configs[a.config.id] = a.config
        return out
