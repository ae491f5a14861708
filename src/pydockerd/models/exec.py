"""Exec models (moby api/types/container/exec.go)."""
from __future__ import annotations

from typing import ClassVar

from .base import Model, StrSlice, UInt


class ExecConfig(Model, frozen=True):
    """POST /containers/{id}/exec. Cmd is a []string in Go; a lone string is accepted
    as a one-element list, as pydockerd always did."""
    go_type: ClassVar[str] = "container.ExecOptions"
    User: str | None = None
    Privileged: bool | None = None
    Tty: bool | None = None
    ConsoleSize: list[UInt] | None = None
    AttachStdin: bool | None = None
    AttachStderr: bool | None = None
    AttachStdout: bool | None = None
    Detach: bool | None = None
    DetachKeys: str | None = None
    Env: list[str] | None = None
    WorkingDir: str | None = None
    Cmd: StrSlice | None = None


class ExecStartConfig(Model, frozen=True):
    """POST /exec/{id}/start."""
    go_type: ClassVar[str] = "container.ExecStartOptions"
    Detach: bool | None = None
    Tty: bool | None = None
    ConsoleSize: list[UInt] | None = None
