"""Where the cgroup hierarchies are mounted, read from mountinfo (never assumed to
be under /sys/fs/cgroup), and the directory of a cgroup a process is in.

/proc/<pid>/cgroup names each hierarchy ("cpu,cpuacct", "pids", "name=systemd",
"" for the unified one) and the cgroup's path inside it; mountinfo says where
each hierarchy is mounted, and which of its cgroups is the mount's root (not "/"
for a daemon in a container that shares the host's cgroup namespace): a path maps
to the mount point plus its path relative to that root, as libcontainer does.
The one resolver for the daemon: the exec planner (runtime/nsexec.py: the
container init's cgroups) and the cgroup lock warmer (runtime/cgwarm.py: the
daemon thread's own cgroup) both use it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ..util.mounts import unescape_mountinfo

UNIFIED = ""        # the unified (cgroup v2) hierarchy's name in /proc/<pid>/cgroup
# a v1 mount's options that name no controller (the kernel's cgroup1 flags)
_FLAGS = frozenset({"rw", "ro", "xattr", "clone_children", "noprefix", "cpuset_v2_mode",
                    "favordynmods", "none", "all"})


@dataclass(frozen=True)
class CgroupMount:
    """Where a hierarchy is mounted, and which of its cgroups is that mount's root
    ("/" on a host; "/docker/<id>" in a container that sees the host's cgroup
    namespace through a bind of its own cgroup)."""
    point: str
    root: str = "/"


@dataclass(frozen=True)
class CgroupMounts:
    """The mount of each hierarchy, keyed as /proc/<pid>/cgroup names it (a v1
    hierarchy of several controllers also under each of its controllers)."""
    mounts: dict[str, CgroupMount]

    @classmethod
    def parse(cls, mountinfo: str) -> "CgroupMounts":
        """From mountinfo's text: for each hierarchy, the first mount of its root, else
        (a daemon in a container) the first mount of one of its cgroups."""
        found: dict[str, CgroupMount] = {}
        for line in mountinfo.splitlines():
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            mount = CgroupMount(unescape_mountinfo(fields[4]), unescape_mountinfo(fields[3]))
            if rfields[0] == "cgroup2":
                keys: tuple[str, ...] = (UNIFIED,)
            elif rfields[0] == "cgroup":
                opts = [o for o in rfields[2].split(",") if o not in _FLAGS
                        and (o.startswith("name=") or "=" not in o)]
                # /proc/<pid>/cgroup lists a hierarchy's controllers in kernel order;
                # the mount's options may list them in another: the joined list and
                # each one count
                keys = (",".join(opts), *opts)
            else:
                continue
            for key in keys:
                if key not in found or (found[key].root != "/" and mount.root == "/"):
                    found[key] = mount
        return cls(found)

    @property
    def points(self) -> dict[str, str]:
        """The mount point of each hierarchy."""
        return {key: m.point for key, m in self.mounts.items()}

    @property
    def has_unified(self) -> bool:
        return UNIFIED in self.mounts

    def _mount(self, names: str) -> CgroupMount | None:
        return self.mounts.get(names) or self.mounts.get(names.split(",")[0])

    def mount_of(self, names: str) -> str | None:
        """The mount point of the hierarchy /proc/<pid>/cgroup calls `names`."""
        mount = self._mount(names)
        return None if mount is None else mount.point

    def directory(self, names: str, path: str) -> str | None:
        """The directory of cgroup `path` (as /proc/<pid>/cgroup names it) in hierarchy
        `names`: the mount point and the path relative to the mount's root, as
        libcontainer maps it; None when the hierarchy is not mounted or the cgroup
        is not below the mounted root."""
        mount = self._mount(names)
        if mount is None:
            return None
        root = mount.root.rstrip("/")
        if root and path != root and not path.startswith(root + "/"):
            return None
        rel = path[len(root):].lstrip("/")
        return os.path.join(mount.point, rel) if rel else mount.point


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


__all__ = ["CgroupMount", "CgroupMounts", "UNIFIED", "host_cgroup_mounts", "parse_proc_cgroup"]
