"""Where the cgroup hierarchies are mounted, read from mountinfo (never assumed to
be under /sys/fs/cgroup), and the directory of a cgroup a process is in.

/proc/<pid>/cgroup names each hierarchy ("cpu,cpuacct", "pids", "name=systemd",
"" for the unified one) and the cgroup's path inside it; mountinfo says where
each hierarchy is mounted. The one resolver for the daemon: the exec planner
(runtime/nsexec.py: the container init's cgroups) and the cgroup lock warmer
(runtime/cgwarm.py: the daemon thread's own cgroup) both use it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ..util.mounts import unescape_mountinfo

UNIFIED = ""        # the unified (cgroup v2) hierarchy's name in /proc/<pid>/cgroup


@dataclass(frozen=True)
class CgroupMounts:
    """The mount point of each hierarchy, keyed as /proc/<pid>/cgroup names it (a
    v1 hierarchy of several controllers also under each of its controllers)."""
    points: dict[str, str]

    @classmethod
    def parse(cls, mountinfo: str) -> "CgroupMounts":
        """From mountinfo's text: the first mount of each hierarchy's root (a mount of
        a sub-cgroup, as in a container's cgroup namespace, does not count)."""
        found: dict[str, str] = {}
        for line in mountinfo.splitlines():
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3 or fields[3] != "/":
                continue
            point = unescape_mountinfo(fields[4])
            if rfields[0] == "cgroup2":
                found.setdefault(UNIFIED, point)
            elif rfields[0] == "cgroup":
                opts = [o for o in rfields[2].split(",") if o not in ("rw", "ro")
                        and (o.startswith("name=") or "=" not in o)]
                # /proc/<pid>/cgroup lists a hierarchy's controllers in kernel order;
                # the mount's options may list them in another: the joined list and
                # each one count
                for key in (",".join(opts), *opts):
                    found.setdefault(key, point)
        return cls(found)

    @property
    def has_unified(self) -> bool:
        return UNIFIED in self.points

    def mount_of(self, names: str) -> str | None:
        """The mount point of the hierarchy /proc/<pid>/cgroup calls `names`."""
        return self.points.get(names) or self.points.get(names.split(",")[0])

    def directory(self, names: str, path: str) -> str | None:
        """The directory of cgroup `path` in hierarchy `names`; None when the
        hierarchy is not mounted."""
        mount = self.mount_of(names)
        return None if mount is None else os.path.join(mount, path.lstrip("/"))


def parse_proc_cgroup(text: str) -> list[tuple[str, str]]:
    """/proc/<pid>/cgroup's (hierarchy names, cgroup path) lines."""
    out = []
    for line in text.splitlines():
        _, names, path = line.split(":", 2)
        out.append((names, path))
    return out


@functools.cache
def host_cgroup_mounts() -> CgroupMounts:
    """The daemon's cgroup mounts, read once (cgroup hierarchies are mounted at boot
    and stay where they are)."""
    with open("/proc/self/mountinfo") as f:
        return CgroupMounts.parse(f.read())


__all__ = ["CgroupMounts", "UNIFIED", "host_cgroup_mounts", "parse_proc_cgroup"]
