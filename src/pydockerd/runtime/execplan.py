"""What an exec the daemon starts itself needs (made by nsexec.plan_exec, carried to
the fork server by nsclient, applied by nschild)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..util.procfs import stat_fields
from .seccompbpf import SeccompProgram


@dataclass
class ExecPlan:
    cid: str
    init_pid: int
    namespaces: list[str]          # names under /proc/<pid>/ns, in joining order
    cgroups_v1: list[str]          # the container's directory in each v1 hierarchy
    cgroup_v2: str | None          # and in the unified one
    process: dict[str, Any]
    caps: dict[str, int]           # bit masks by set
    rlimits: list[tuple[int, int, int]]
    seccomp: SeccompProgram | None
    no_new_keyring: bool
    init_start: int = 0            # when init_pid started: a reused pid is not the init


def start_time(pid: int, dir_fd: int | None = None) -> int | None:
    """When the process started (ticks after boot), or None if it is gone."""
    fields = stat_fields(pid, dir_fd)
    return int(fields[19]) if fields is not None else None


def open_init(pid: int, start: int) -> int:
    """/proc/<pid> as a directory fd, if pid is still the process that started at
    `start`: what is opened through it is that process's, or fails once it is gone,
    even when its pid is reused (runc checks the init's start time the same way)."""
    fd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if start_time(pid, fd) != start:
        os.close(fd)
        raise ProcessLookupError(f"the container's init (pid {pid}) is gone")
    return fd
