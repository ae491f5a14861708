"""The runtime's input: everything build_spec needs to know about one container.

Filled by containers/spec.py from Docker's Config and HostConfig; host facts come
separately (runtime/host.py), pre-resolved users from runtime/users.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydockerd.runtime.host import HostFacts
from pydockerd.runtime.rlimits import Ulimit
from pydockerd.runtime.users import ExecUser

DEFAULT_INIT_BINARY = "/usr/bin/tini-static"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024


@dataclass
class MountSpec:
    """One OCI mount. type "volume" (from parse_bind) is for the caller to resolve."""

    destination: str
    source: str = ""
    type: str = "bind"
    options: list[str] = field(default_factory=list)

    def to_oci(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }


@dataclass
class DeviceSpec:
    """Docker's --device /dev/x[:/dev/y[:rwm]]."""

    path_on_host: str
    path_in_container: str = ""
    cgroup_permissions: str = "rwm"


@dataclass
class SpecInput:
    container_id: str = ""
    rootfs: str = "/"
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: str = ""
    group_add: list[str] = field(default_factory=list)
    tty: bool = False
    open_stdin: bool = False
    hostname: str = ""
    domainname: str = ""
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    daemon_no_new_privileges: bool = False
    # Daemon --seccomp-profile: profile content, "unconfined", or None for the builtin.
    seccomp_profile: str | None = None
    mounts: list[MountSpec] = field(default_factory=list)
    shm_size: int = DEFAULT_SHM_SIZE
    # Namespaces. netns_path: "" = new empty netns, None = host, else a path to join.
    netns_path: str | None = ""
    netns_shared: bool = False  # joining another container's netns (--network container:X)
    pid_mode: str = ""  # "" | "host" | "/proc/<pid>/ns/pid"
    ipc_mode: str = ""  # "" | "private" | "shareable" | "none" | "host" | path
    uts_host: bool = False
    cgroupns_private: bool | None = None  # None: private on cgroup v2 hosts, host on v1
    # --userns-remap: a user namespace with these mappings (empty: none); joined at
    # userns_path when set (the sandbox's, or the container whose netns is shared)
    uid_mappings: list[dict[str, int]] = field(default_factory=list)
    gid_mappings: list[dict[str, int]] = field(default_factory=list)
    userns_path: str = ""
    # Resources (0 / None = unset, as in the Docker API).
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    blkio_weight: int = 0
    oom_kill_disable: bool | None = None
    cgroups_path: str = ""
    oom_score_adj: int = 0
    sysctls: dict[str, str] = field(default_factory=dict)
    devices: list[DeviceSpec] = field(default_factory=list)
    ulimits: list[Ulimit] = field(default_factory=list)
    default_ulimits: list[Ulimit] = field(default_factory=list)
    init: bool = False
    init_path: str = DEFAULT_INIT_BINARY
    masked_paths: list[str] | None = None  # None = Docker's defaults
    readonly_paths: list[str] | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    # Host facts, None = this host's, probed once per process (tests pass them explicitly).
    host: HostFacts | None = None
    exec_user: ExecUser | None = None  # pre-resolved user; None = resolve from rootfs
