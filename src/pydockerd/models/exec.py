"""Exec models (moby api/types/container/exec.go)."""
from __future__ import annotations

from typing import ClassVar

from .base import Model, UInt


class ExecConfig(Model, frozen=True):
    """POST /containers/{id}/exec. Cmd is a plain []string in Go (not a StrSlice):
    a lone string is refused, as dockerd refuses it."""
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
    Cmd: list[str] | None = None


class ExecStartConfig(Model, frozen=True):
    """POST /exec/{id}/start."""
    go_type: ClassVar[str] = "container.ExecStartOptions"
    Detach: bool | None = None
    Tty: bool | None = None
    ConsoleSize: list[UInt] | None = None
