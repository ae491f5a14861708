"""What an exec the daemon starts itself needs (made by nsexec.plan_exec, carried to
the fork server by nsclient, applied by nschild)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
