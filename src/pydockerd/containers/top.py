"""`docker top`: the host's `ps` output, filtered to the container's processes."""
from __future__ import annotations

import os

from ..errors import Conflict, InvalidParameter, SystemError_
from ..util import cmd
from .model import Container
from .stats import cgroup_dir


async def top(c: Container, ps_args: str) -> tuple[list[str], list[list[str]]]:
    if not c.state.running:
        raise Conflict(f"Container {c.id} is not running")
    procs_file = os.path.join(cgroup_dir(c.id, "pids"), "cgroup.procs")
    with open(procs_file) as f:
        pids = {int(x) for x in f.read().split()}
    out = await cmd.run(["ps", *ps_args.split()])
    lines = out.splitlines()
    if not lines:
        raise SystemError_("ps printed nothing")
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise InvalidParameter("Couldn't find PID field in ps output") from None
    procs = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        try:
            if int(fields[pid_col]) in pids:
                procs.append(fields)
        except (ValueError, IndexError):
            continue
    return titles, procs
