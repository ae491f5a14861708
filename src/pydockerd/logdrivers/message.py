"""The shapes every log driver shares: one Message, the LogDriver a pipeline writes
to, and the entries `docker logs` reads back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

import msgspec


@dataclass(slots=True)
class Message:
    """One line (or a 16 KiB piece of one) as the container wrote it."""
    stream: str        # "stdout" | "stderr"
    line: bytes        # without the newline
    partial: bool      # True: no newline ended it (a 16 KiB piece, or output cut at exit)
    time: str          # conmon's RFC3339Nano timestamp of the line's first piece


class LogEntry(msgspec.Struct, gc=False):
    """A message read back for `docker logs` / attach `logs=1`. Not tracked by the
    cyclic GC (it holds only strings and bytes): a `docker logs` of a million lines
    makes a million of them, and tracked objects made the collector's passes cost
    more than the decoding."""
    stream: str
    data: bytes        # with its newline unless the message was partial
    time: str          # RFC3339Nano
    attrs: tuple[tuple[str, str], ...] = ()    # json-file's `attrs` (for --details)


class LogDriver(Protocol):
    """Where a container's messages go. The pipeline calls `log` for each message
    and `commit` at record boundaries: `log` returns True when the driver wants a
    commit before the next message (a rotation is due, or its buffer is full).
    `commit` makes the messages so far durable (as far as the driver can) and
    returns the driver's position, stored with the spool cursor in one atomic
    write; after a crash the driver is reopened with that position, so whatever
    it wrote past it is undone (truncated) and written again: no line lost or
    repeated. Drivers that send elsewhere return {} and accept at-least-once."""

    def log(self, msg: Message) -> bool: ...

    def commit(self) -> Mapping[str, int]: ...

    def close(self) -> None: ...
