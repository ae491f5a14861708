"""Typed progress events: what pull, push, load, import and build report while they run.

Services yield these; api/wire_progress.py turns each into the JSON message the
docker CLI renders (status lines, progress bars, errors, aux records). No
service builds those JSON documents itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Base of every event a streaming operation reports."""


@dataclass(frozen=True, slots=True)
class Status(ProgressEvent):
    """A line of text, optionally about one thing (`Pulling from x` for tag `1`)."""
    text: str
    id: str = ""


@dataclass(frozen=True, slots=True)
class LayerStatus(ProgressEvent):
    """A step of one layer without a byte count: `Waiting`, `Pull complete`, ..."""
    id: str
    text: str


BarStyle = Literal["registry", "load"]


@dataclass(frozen=True, slots=True)
class Progress(ProgressEvent):
    """Bytes done of a layer: `Downloading`, `Extracting`, `Pushing`, `Loading layer`.
    style: the bar text of pull/push ("registry") or of load/import ("load"),
    which pydockerd has always drawn slightly differently."""
    id: str
    action: str
    current: int
    total: int
    style: BarStyle = "registry"


@dataclass(frozen=True, slots=True)
class ErrorEvent(ProgressEvent):
    """The operation failed after the stream started (the stream ends here).
    code: a RUN step's exit code (builds only)."""
    message: str
    code: int | None = None


@dataclass(frozen=True, slots=True)
class PushedDigest(ProgressEvent):
    """The aux record of a pushed tag (the CLI's `--quiet` digest and trust data)."""
    tag: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class BuiltImage(ProgressEvent):
    """The aux record naming the image a build produced."""
    image_id: str


@dataclass(frozen=True, slots=True)
class StreamText(ProgressEvent):
    """Free text for the client's terminal (build steps, RUN output, `Loaded image`)."""
    text: str


@dataclass(frozen=True, slots=True)
class KeepAlive(ProgressEvent):
    """Nothing happened for a while: whitespace between messages, so a client that
    went away is noticed."""


__all__ = ["ProgressEvent", "Status", "LayerStatus", "Progress", "BarStyle", "ErrorEvent",
           "PushedDigest", "BuiltImage", "StreamText", "KeepAlive"]
