"""The task state machine a worker owns (SwarmKit's TaskState is a Lamport
clock: every state has a number and a task's state only ever grows). No gRPC
here: the values are SwarmKit's wire numbers."""
from __future__ import annotations

NEW, PENDING, ASSIGNED = 0, 64, 192
ACCEPTED, PREPARING, READY, STARTING, RUNNING = 256, 320, 384, 448, 512
COMPLETE, SHUTDOWN, FAILED, REJECTED = 576, 640, 704, 768
REMOVE, ORPHANED = 800, 832          # set by managers only

NAMES = {NEW: "new", PENDING: "pending", ASSIGNED: "assigned", ACCEPTED: "accepted",
         PREPARING: "preparing", READY: "ready", STARTING: "starting",
         RUNNING: "running", COMPLETE: "complete", SHUTDOWN: "shutdown",
         FAILED: "failed", REJECTED: "rejected", REMOVE: "remove",
         ORPHANED: "orphaned"}

# the message SwarmKit's agent reports with each state it reaches
MESSAGES = {ACCEPTED: "accepted", PREPARING: "preparing", READY: "prepared",
            STARTING: "starting", RUNNING: "started", COMPLETE: "finished",
            SHUTDOWN: "shutdown", FAILED: "failed", REJECTED: "rejected"}


def terminal(state: int) -> bool:
    """Complete, Shutdown, Failed, Rejected (and the managers' later ones)."""
    return state >= COMPLETE


def may_move(current: int, new: int) -> bool:
    """A status change is reported only forwards, and never out of a terminal state."""
    return new > current and not terminal(current)


def error_state(current: int) -> int:
    """The state an error leads to: before the container started the task is
    Rejected (it never ran here), from Starting on it Failed."""
    return REJECTED if current < STARTING else FAILED


def exit_state(exit_code: int) -> tuple[int, str]:
    """The state and error of a task whose container exited."""
    if exit_code == 0:
        return COMPLETE, ""
    return FAILED, f"task: non-zero exit ({exit_code})"
