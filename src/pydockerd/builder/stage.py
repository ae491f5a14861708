"""What a Dockerfile step works on: the Stage being built, and the `BuildSteps`
role a running build offers to the instruction handlers (instructions.py, run.py).

This module sits below instructions.py, run.py and service.py so that none of
them imports another one above it: service.Build implements BuildSteps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from ..containers.model import Container
from ..errors import DockerError
from ..images.model import Image
from ..images.service import ImageService
from .buildcontext import BuildContext
from .commit import StepCommitter
from .parser import Instruction

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]


class StepFailed(DockerError):
    """A RUN whose command exited non-zero (errorDetail carries the code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Stage:
    name: str
    index: int
    image: Image | None = None                     # None: FROM scratch (so far)
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)   # ARGs declared in this stage
    cmd_set: bool = False

    def env(self) -> dict[str, str]:
        """What $VAR sees: ARGs overridden by ENV."""
        out = dict(self.args)
        for e in self.config.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


class RunOutput(Protocol):
    """An attach session to a RUN step's container: its output, then None."""

    async def recv(self) -> tuple[str, bytes] | None: ...

    def close(self) -> None: ...


class BuildContainers(Protocol):
    """What a RUN step needs from the container service: an intermediate container
    to create, attach to, start, wait for and remove."""

    async def create(self, name: str | None, config: dict[str, Any],
                     host_config: dict[str, Any] | None,
                     networking_config: dict[str, Any] | None = None) -> Container: ...

    def attach(self, ref: str) -> Awaitable[RunOutput]: ...

    async def start(self, ref: str) -> object: ...

    async def wait(self, ref: str, condition: str = "not-running") -> Container: ...

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...


class BuildSteps(Protocol):
    """What the instruction handlers need from the build that runs them."""

    escape: str
    context: BuildContext
    images: ImageService
    containers: BuildContainers
    committer: StepCommitter

    def say(self, text: str) -> None: ...

    async def cached(self, st: Stage, created_by: str) -> bool: ...

    def step_done(self, st: Stage, parent: Image | None, created_by: str,
                  img: Image) -> None: ...

    def declare_arg(self, args: dict[str, str], name: str, default: str | None) -> None: ...

    def content_hash(self, paths: list[str]) -> str: ...

    async def commit_metadata(self, st: Stage, created_by: str) -> None: ...

    async def commit_layer(self, st: Stage, write: Callable[[str], None], created_by: str,
                           before: Callable[[], Awaitable[None]] | None = None) -> None:
        """A layer written by write(root), unless the step is cached; before() first."""
        ...

    async def copy_from(self, st: Stage, src_from: str, srcs: list[str], dest: str,
                        workdir: str, owner: str, ins: Instruction) -> None: ...

    async def run(self, st: Stage, cmd: list[str]) -> None: ...

    def run_host_config(self) -> dict[str, Any]:
        """The HostConfig of RUN containers (the build's network, resources, ...)."""
        ...

    async def download(self, url: str, dest: str) -> str:
        """ADD <url> to dest: the downloaded file's host path."""
        ...
