"""Turn a container's settings into an OCI runtime config.json (runtime-spec 1.0.2, runc 1.1.5).

`build_spec(SpecInput) -> dict` mirrors what moby's daemon/oci_linux.go and
daemon/pkg/oci/defaults.go produce: Docker's default mounts, masked and
read-only paths, device allowlist, 14 default capabilities and default
seccomp profile, plus the container's own resources, namespaces and user.

Everything here is a pure function of its input except a few reads of the
host that Docker makes too, each overridable through SpecInput: the daemon's
capability bounding set (privileged containers get what the host has), its
RLIMIT hard limits (rlimits are clamped to them: runc cannot raise them), the
cgroup version (private cgroupns on v2 only), and device nodes for --device and
--privileged.
"""
from __future__ import annotations

import os
import posixpath
import re
import resource
import stat
from dataclasses import dataclass, field
from typing import Any

from pydockerd.errors import InvalidParameter
from pydockerd.runtime import caps as capslib
from pydockerd.runtime import seccomp as seccomplib
from pydockerd.runtime.users import ExecUser, resolve_user

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"
DEFAULT_INIT_BINARY = "/usr/bin/tini-static"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
RLIM_INFINITY = 2**64 - 1  # as runc wants it (uint64)

DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",  # absent on some kernels (this one): runc skips missing masked paths
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)

DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Names Docker accepts for --ulimit (RLIMIT_<NAME>).
ULIMIT_NAMES: tuple[str, ...] = (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
    "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)

_VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_RW_MODES = {"rw", "ro"}
_LABEL_MODES = {"z", "Z"}
_PROPAGATION_MODES = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
_COPY_MODES = {"nocopy"}
_CONSISTENCY_MODES = {"consistent", "cached", "delegated"}


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
class Ulimit:
    name: str
    soft: int
    hard: int


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
    # Host facts, None = read from this host (tests pass them explicitly).
    host_capabilities: list[str] | None = None
    host_rlimits: dict[str, int] | None = None  # RLIMIT name ("nofile") -> hard limit
    exec_user: ExecUser | None = None  # pre-resolved user; None = resolve from rootfs


@dataclass
class SecurityOptions:
    no_new_privileges: bool | None = None
    seccomp: str | None = None  # profile content, "unconfined", "builtin"
    apparmor: str = ""
    writable_cgroups: bool | None = None


def parse_security_opts(opts: list[str]) -> SecurityOptions:
    """Docker's HostConfig.SecurityOpt, with moby's error messages."""
    out = SecurityOptions()
    for opt in opts:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "writable-cgroups":
            out.writable_cgroups = True
            continue
        if opt == "disable":
            continue  # SELinux label option; no SELinux here
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")  # deprecated separator, still accepted
        else:
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
        if key == "label":
            # SELinux labels: accepted and ignored, SELinux is not enabled on these hosts
            # (what moby does when SELinux is disabled).
            continue
        if key == "apparmor":
            # Accepted and ignored: this host has no AppArmor (moby skips the
            # profile when AppArmor is not supported).
            out.apparmor = value
        elif key == "seccomp":
            out.seccomp = value
        elif key in ("no-new-privileges", "writable-cgroups"):
            parsed = _parse_bool(value)
            if parsed is None:
                raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
            if key == "no-new-privileges":
                out.no_new_privileges = parsed
            else:
                out.writable_cgroups = parsed
        else:
            raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
    return out


def _parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


# ---------------------------------------------------------------- binds, tmpfs


def _valid_bind_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0, "consistency": 0}
    for o in mode.split(","):
        if o in _RW_MODES:
            counts["rw"] += 1
        elif o in _LABEL_MODES:
            counts["label"] += 1
        elif o in _PROPAGATION_MODES:
            counts["prop"] += 1
        elif o in _COPY_MODES:
            counts["copy"] += 1
        elif o in _CONSISTENCY_MODES:
            counts["consistency"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def parse_bind(spec: str) -> MountSpec:
    """Docker's `-v src:dst[:mode]` (HostConfig.Binds) → a MountSpec.

    An absolute source is a bind mount (options rbind, ro when asked, and the
    propagation mode); a volume name gives type "volume" with the name as
    source; a lone "/dst" is an anonymous volume (type "volume", source "").
    Relative host paths are rejected.
    """
    invalid = f"invalid volume specification: '{spec}'"
    parts = spec.split(":", 3)
    if parts[0] == "":
        raise InvalidParameter(invalid)
    mode = ""
    if len(parts) == 1:
        source, dest = "", parts[0]
    elif len(parts) == 2:
        if _valid_bind_mode(parts[1]):
            raise InvalidParameter(invalid)
        source, dest = parts
    elif len(parts) == 3:
        source, dest, mode = parts
    else:
        raise InvalidParameter(invalid)
    if not _valid_bind_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    if not dest.startswith("/"):
        raise InvalidParameter(
            f"{invalid}: invalid mount path: '{dest}' mount path must be absolute"
        )
    dest = posixpath.normpath(dest)
    if dest == "/" or dest == "//":
        raise InvalidParameter(f"{invalid}: invalid specification: destination can't be '/'")
    opts = mode.split(",") if mode else []
    readonly = "ro" in opts
    propagation = next((o for o in opts if o in _PROPAGATION_MODES), "")
    if source.startswith("/"):
        options = ["rbind"]
        if readonly:
            options.append("ro")
        options.append(propagation or "rprivate")
        return MountSpec(destination=dest, source=posixpath.normpath(source), type="bind",
                         options=options)
    if source and not _VOLUME_NAME_RE.match(source):
        raise InvalidParameter(
            f'create {source}: "{source}" includes invalid characters for a local volume '
            'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
            "a host directory, use absolute path"
        )
    options = ["ro"] if readonly else []
    options += [o for o in opts if o == "nocopy"]
    return MountSpec(destination=dest, source=source, type="volume", options=options)


_TMPFS_FLAG_PAIRS = {
    "exec": "noexec", "suid": "nosuid", "dev": "nodev", "atime": "noatime",
    "diratime": "nodiratime", "relatime": "norelatime", "strictatime": "nostrictatime",
    "ro": "rw",
}
_TMPFS_FLAG_KEY = {**{k: k for k in _TMPFS_FLAG_PAIRS}, **{v: k for k, v in _TMPFS_FLAG_PAIRS.items()}}
_TMPFS_DATA_KEYS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol",
                    "huge", "tmpcopyup", "notmpcopyup"}
_TMPFS_OTHER = {"sync", "async", "dirsync", "mand", "nomand", "remount", "bind", "rbind",
                "private", "rprivate", "shared", "rshared", "slave", "rslave",
                "tmpcopyup", "notmpcopyup"}


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """moby's MergeTmpfsOptions: later options win over earlier ones of the same kind."""
    seen: set[str] = set()
    out: list[str] = []
    for opt in reversed(options):
        if not opt:
            continue
        key = opt.split("=", 1)[0]
        if key in _TMPFS_FLAG_KEY:
            key = "flag:" + _TMPFS_FLAG_KEY[key]
        elif "=" in opt:
            if key not in _TMPFS_DATA_KEYS:
                raise InvalidParameter(f"invalid tmpfs option [{key}]")
        elif opt not in _TMPFS_OTHER:
            raise InvalidParameter(f'invalid tmpfs option ["{opt}"]')
        if key in seen:
            continue
        seen.add(key)
        out.insert(0, opt)
    return out


def parse_tmpfs(dest: str, opts: str | list[str] = "") -> MountSpec:
    """Docker's --tmpfs /dst[:opts] (HostConfig.Tmpfs entry) → a tmpfs MountSpec."""
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
    extra = [o for o in (opts.split(",") if isinstance(opts, str) else opts) if o]
    merged = merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", *extra])
    return MountSpec(destination=posixpath.normpath(dest), source="tmpfs", type="tmpfs",
                     options=merged)


# ---------------------------------------------------------------- spec pieces


def build_env(env: list[str], hostname: str, tty: bool) -> list[str]:
    """Docker's CreateDaemonEnvironment: PATH, HOSTNAME, TERM, then the container's env."""
    base = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={hostname}"]
    if tty:
        base.append("TERM=xterm")
    index = {e.split("=", 1)[0]: i for i, e in enumerate(base)}
    result: list[str | None] = list(base)
    for value in env:
        key, has_eq, _ = value.partition("=")
        if not has_eq:
            if key in index:
                result[index[key]] = None  # "KEY" alone unsets it
            continue
        if key in index:
            result[index[key]] = value
        else:
            index[key] = len(result)
            result.append(value)
    return [e for e in result if e is not None]


def default_mounts(shm_size: int = DEFAULT_SHM_SIZE) -> list[MountSpec]:
    return [
        MountSpec("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        MountSpec("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        MountSpec("/dev/pts", "devpts", "devpts",
                  ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        MountSpec("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        MountSpec("/sys/fs/cgroup", "cgroup", "cgroup", ["ro", "nosuid", "noexec", "nodev"]),
        MountSpec("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        MountSpec("/dev/shm", "shm", "tmpfs",
                  ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]),
    ]


def _depth(path: str) -> int:
    return len([p for p in posixpath.normpath(path).split("/") if p])


def build_mounts(inp: SpecInput, writable_cgroups: bool) -> list[dict[str, Any]]:
    """Docker's defaults (minus those a user mount replaces), then user mounts, parents first."""
    user = sorted(inp.mounts, key=lambda m: _depth(m.destination))  # stable sort
    for m in user:
        if m.type == "volume":
            raise InvalidParameter(f"volume mount at {m.destination} was not resolved to a path")
    user_dests = {posixpath.normpath(m.destination) for m in user}
    mount_dev = "/dev" in user_dests
    mounts: list[MountSpec] = []
    for m in default_mounts(inp.shm_size):
        if m.destination in user_dests:
            continue
        if mount_dev and m.destination.startswith("/dev/"):
            continue
        if m.destination == "/dev/shm" and inp.ipc_mode == "none":
            continue
        mounts.append(m)
    if inp.init and _private_pid(inp):
        mounts.append(MountSpec(INIT_PATH_IN_CONTAINER, inp.init_path, "bind", ["bind", "ro"]))
    if inp.readonly_rootfs:
        for m in mounts:
            if m.destination not in ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"):
                if "ro" not in m.options:
                    m.options = [*m.options, "ro"]
    out_mounts = [MountSpec(m.destination, m.source, m.type, list(m.options)) for m in mounts]
    out_mounts += [MountSpec(m.destination, m.source, m.type, list(m.options)) for m in user]
    for m in out_mounts:
        if (inp.privileged and m.destination == "/sys") or (writable_cgroups and m.type == "cgroup"):
            m.options = [o for o in m.options if o != "ro"]
    return [m.to_oci() for m in out_mounts]


def _private_pid(inp: SpecInput) -> bool:
    return inp.pid_mode in ("", "private")


def build_namespaces(inp: SpecInput, cgroup_v2: bool) -> list[dict[str, str]]:
    ns: list[dict[str, str]] = [{"type": "mount"}]
    if inp.netns_path is not None:
        ns.append({"type": "network", "path": inp.netns_path} if inp.netns_path
                  else {"type": "network"})
    if not inp.uts_host:
        ns.append({"type": "uts"})
    if inp.pid_mode in ("", "private"):
        ns.append({"type": "pid"})
    elif inp.pid_mode != "host":
        ns.append({"type": "pid", "path": _ns_path(inp.pid_mode, "pid")})
    if inp.ipc_mode in ("", "private", "shareable", "none"):
        ns.append({"type": "ipc"})
    elif inp.ipc_mode != "host":
        ns.append({"type": "ipc", "path": _ns_path(inp.ipc_mode, "ipc")})
    private_cgroupns = inp.cgroupns_private if inp.cgroupns_private is not None else cgroup_v2
    if private_cgroupns:
        ns.append({"type": "cgroup"})
    return ns


def _ns_path(mode: str, kind: str) -> str:
    if not mode.startswith("/"):
        raise InvalidParameter(f"invalid {kind.upper()} mode: {mode}")
    return mode


def build_resources(inp: SpecInput) -> dict[str, Any]:
    res: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if inp.memory > 0:
        memory["limit"] = inp.memory
    if inp.memory_reservation > 0:
        memory["reservation"] = inp.memory_reservation
    if inp.memory_swap > 0:
        memory["swap"] = inp.memory_swap
    if inp.memory_swappiness is not None and inp.memory_swappiness >= 0:
        memory["swappiness"] = inp.memory_swappiness
    if inp.oom_kill_disable is not None:
        memory["disableOOMKiller"] = inp.oom_kill_disable
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if inp.cpu_shares < 0:
        raise InvalidParameter(f"invalid CPU shares ({inp.cpu_shares}): value must be a positive integer")
    if inp.cpu_shares:
        cpu["shares"] = inp.cpu_shares
    if inp.cpuset_cpus:
        cpu["cpus"] = inp.cpuset_cpus
    if inp.cpuset_mems:
        cpu["mems"] = inp.cpuset_mems
    if inp.nano_cpus > 0:
        period = 100_000
        cpu["period"] = period
        cpu["quota"] = inp.nano_cpus * period // 1_000_000_000
    if inp.cpu_period:
        cpu["period"] = inp.cpu_period
    if inp.cpu_quota:
        cpu["quota"] = inp.cpu_quota
    if cpu:
        res["cpu"] = cpu
    if inp.pids_limit is not None:
        res["pids"] = {"limit": inp.pids_limit if inp.pids_limit > 0 else -1}
    if inp.blkio_weight:
        res["blockIO"] = {"weight": inp.blkio_weight}
    return res


def default_device_rules() -> list[dict[str, Any]]:
    """Deny all, then Docker's allowlist (runc adds its own defaults for pts, ptmx, tun...)."""
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)):
        rules.append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"})
    rules.append({"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    return rules


def device_from_path(path: str) -> dict[str, Any] | None:
    """An OCI linux.devices entry for a host device node, or None if it is not one."""
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISBLK(mode):
        kind = "b"
    elif stat.S_ISCHR(mode):
        kind = "c"
    else:
        return None
    return {
        "path": path,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def devices_from_spec(dev: DeviceSpec) -> list[dict[str, Any]]:
    """Device nodes for one --device (a node, or a directory of nodes)."""
    host = dev.path_on_host
    in_ctr = dev.path_in_container or host
    resolved = os.path.realpath(host) if os.path.islink(host) else host
    try:
        node = device_from_path(resolved)
    except OSError as e:
        raise InvalidParameter(
            f'error gathering device information while adding custom device "{host}": '
            f"{e.strerror or e}"
        ) from None
    if node is not None:
        node["path"] = in_ctr
        return [node]
    found: list[dict[str, Any]] = []
    if os.path.isdir(resolved):
        for dirpath, _dirs, files in os.walk(resolved):
            for name in sorted(files):
                full = os.path.join(dirpath, name)
                try:
                    child = device_from_path(full)
                except OSError:
                    continue
                if child is not None:
                    child["path"] = in_ctr + full[len(resolved):]
                    found.append(child)
    if not found:
        raise InvalidParameter(
            f'error gathering device information while adding custom device "{host}": '
            "not a device node"
        )
    return found


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """All device nodes of the host (what a privileged container gets), as containerd lists them."""
    out: list[dict[str, Any]] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name in ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"):
                continue
            out += host_devices(entry.path)
            continue
        if entry.name == "console":
            continue
        try:
            dev = device_from_path(entry.path)
        except OSError:
            continue
        if dev is not None:
            out.append(dev)
    return out


def _device_permissions(access: str) -> str:
    if not access or any(c not in "rwm" for c in access):
        raise InvalidParameter(f"invalid device cgroup permissions: {access!r}")
    return access


def read_host_rlimits() -> dict[str, int]:
    """Hard limits of this process, by Docker ulimit name (RLIM_INFINITY as 2**64-1)."""
    out: dict[str, int] = {}
    for name in ULIMIT_NAMES:
        const = getattr(resource, f"RLIMIT_{name.upper()}", None)
        if const is None:
            continue
        try:
            _soft, hard = resource.getrlimit(const)
        except (ValueError, OSError):
            continue
        out[name] = RLIM_INFINITY if hard == resource.RLIM_INFINITY or hard < 0 else hard
    return out


def build_rlimits(ulimits: list[Ulimit], defaults: list[Ulimit],
                  host_hard: dict[str, int]) -> list[dict[str, Any]]:
    """Container ulimits merged over daemon defaults, clamped to the daemon's own hard limits.

    runc cannot raise a hard limit above its own without CAP_SYS_RESOURCE
    (this host's RLIMIT_NOFILE hard limit is 20000), so asking for more would
    only make `runc create` fail with "setrlimit: operation not permitted".
    """
    merged: list[Ulimit] = list(ulimits)
    names = {u.name for u in ulimits}
    merged += [u for u in defaults if u.name not in names]
    out: list[dict[str, Any]] = []
    for u in merged:
        name = u.name.lower()
        if name not in ULIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {u.name}")
        soft = RLIM_INFINITY if u.soft < 0 else u.soft
        hard = RLIM_INFINITY if u.hard < 0 else u.hard
        if soft > hard:
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {u.soft} > {u.hard}"
            )
        ceiling = host_hard.get(name, RLIM_INFINITY)
        hard = min(hard, ceiling)
        soft = min(soft, hard)
        out.append({"type": f"RLIMIT_{name.upper()}", "hard": hard, "soft": soft})
    return out


def cgroup_v2_host() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


# ---------------------------------------------------------------- the spec


def build_spec(inp: SpecInput) -> dict[str, Any]:
    """The full OCI config.json for a container, as a dict ready for json.dump."""
    if not inp.rootfs.startswith("/"):
        raise InvalidParameter(f"rootfs must be an absolute path: {inp.rootfs}")
    if not inp.args:
        raise InvalidParameter("no command specified")
    sec = parse_security_opts(inp.security_opt)
    available = inp.host_capabilities if inp.host_capabilities is not None \
        else capslib.host_capabilities()
    capabilities = capslib.tweak_caps(capslib.DEFAULT_CAPABILITIES, inp.cap_add, inp.cap_drop,
                                      privileged=inp.privileged, available=available)
    user = inp.exec_user or resolve_user(inp.rootfs, inp.user, inp.group_add)
    cgroup_v2 = cgroup_v2_host()
    host_hard = inp.host_rlimits if inp.host_rlimits is not None else read_host_rlimits()

    args = list(inp.args)
    if inp.init and _private_pid(inp):
        args = [INIT_PATH_IN_CONTAINER, "--", *args]
    no_new_privs = sec.no_new_privileges if sec.no_new_privileges is not None \
        else inp.daemon_no_new_privileges
    writable_cgroups = sec.writable_cgroups if sec.writable_cgroups is not None \
        else inp.privileged

    process: dict[str, Any] = {
        "terminal": inp.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        "args": args,
        "env": build_env(inp.env, inp.hostname, inp.tty),
        "cwd": inp.cwd or "/",
        "capabilities": {
            "bounding": list(capabilities),
            "effective": list(capabilities),
            "permitted": list(capabilities),
        },
        "noNewPrivileges": no_new_privs,
        "oomScoreAdj": inp.oom_score_adj,
    }
    rlimits = build_rlimits(inp.ulimits, inp.default_ulimits, host_hard)
    if rlimits:
        process["rlimits"] = rlimits

    linux: dict[str, Any] = {
        "namespaces": build_namespaces(inp, cgroup_v2),
        "resources": build_resources(inp),
    }
    sysctl: dict[str, str] = {}
    if inp.netns_path is not None and not inp.netns_shared:
        # Docker's defaults for the container's own network namespace (kernels >= 4.11).
        sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"
        sysctl["net.ipv4.ping_group_range"] = "0 2147483647"
    if inp.domainname:
        # runc 1.1.5 ignores the runtime-spec "domainname" field (runtime-spec 1.1 /
        # runc 1.2); like moby, set the NIS domain name through its sysctl.
        sysctl["kernel.domainname"] = inp.domainname
    sysctl.update(inp.sysctls)
    if sysctl:
        linux["sysctl"] = sysctl
    if inp.cgroups_path:
        linux["cgroupsPath"] = inp.cgroups_path

    devices: list[dict[str, Any]] = []
    rules = default_device_rules()
    if inp.privileged:
        devices = host_devices()
        for d in inp.devices:
            if d.path_in_container and d.path_in_container != d.path_on_host:
                devices += devices_from_spec(d)
        rules = [{"allow": True, "access": "rwm"}]
    else:
        for d in inp.devices:
            perms = _device_permissions(d.cgroup_permissions)
            for node in devices_from_spec(d):
                devices.append(node)
                rules.append({"allow": True, "type": node["type"], "major": node["major"],
                              "minor": node["minor"], "access": perms})
    linux["resources"]["devices"] = rules
    if devices:
        linux["devices"] = devices

    seccomp_choice = sec.seccomp
    if seccomp_choice != seccomplib.UNCONFINED:
        if inp.privileged:
            profile = seccomplib.profile_for(capabilities, seccomp_choice) \
                if seccomp_choice and seccomp_choice != seccomplib.BUILTIN else None
        elif seccomp_choice:
            profile = seccomplib.profile_for(capabilities, seccomp_choice)
        else:
            profile = seccomplib.profile_for(capabilities, inp.seccomp_profile)
        if profile is not None:
            linux["seccomp"] = profile

    if inp.privileged:
        masked: list[str] = []
        readonly: list[str] = []
    else:
        masked = list(DEFAULT_MASKED_PATHS)
        readonly = list(DEFAULT_READONLY_PATHS)
    if inp.masked_paths is not None:
        masked = list(inp.masked_paths)
    if inp.readonly_paths is not None:
        readonly = list(inp.readonly_paths)
    if masked:
        linux["maskedPaths"] = masked
    if readonly:
        linux["readonlyPaths"] = readonly

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inp.rootfs, "readonly": inp.readonly_rootfs},
        "hostname": "" if inp.uts_host else inp.hostname,
        "mounts": build_mounts(inp, writable_cgroups),
        "linux": linux,
    }
    if inp.annotations:
        spec["annotations"] = dict(inp.annotations)
    return spec
