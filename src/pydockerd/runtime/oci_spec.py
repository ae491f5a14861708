"""Turn a container's settings into an OCI runtime config.json (runtime-spec 1.0.2, runc 1.1.5).

`build_spec(SpecInput) -> dict` mirrors what moby's daemon/oci_linux.go and
daemon/pkg/oci/defaults.go produce: Docker's default mounts, masked and
read-only paths, device allowlist, 14 default capabilities and default
seccomp profile, plus the container's own resources, namespaces and user.

Everything here is a pure function of its input and of the host's facts
(runtime/host.py, probed once per process; SpecInput.host overrides them): the
daemon's capability bounding set (privileged containers get what the host has),
its RLIMIT hard limits (rlimits are clamped to them: runc cannot raise them) and
the cgroup version (private cgroupns on v2 only). Device nodes for --device and
--privileged are read when the spec is built (runtime/devices.py), as Docker does.
Docker's CLI syntax is parsed elsewhere: SecurityOpt in runtime/secopts.py, Binds
and Tmpfs in containers/mountspec.py.
"""
from __future__ import annotations

import posixpath
from typing import Any

from pydockerd.errors import InvalidParameter
from pydockerd.runtime import caps as capslib
from pydockerd.runtime import seccomp as seccomplib
from pydockerd.runtime.devices import (default_device_rules, device_permissions,
                                       devices_from_spec, host_devices)
from pydockerd.runtime.host import host_facts
from pydockerd.runtime.rlimits import build_rlimits
from pydockerd.runtime.secopts import parse_security_opts
from pydockerd.runtime.spec_input import DEFAULT_SHM_SIZE, MountSpec, SpecInput
from pydockerd.runtime.users import resolve_user

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"

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
    if inp.uid_mappings:
        ns.append({"type": "user", "path": inp.userns_path} if inp.userns_path
                  else {"type": "user"})
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


# ---------------------------------------------------------------- the spec


def build_spec(inp: SpecInput) -> dict[str, Any]:
    """The full OCI config.json for a container, as a dict ready for json.dump."""
    if not inp.rootfs.startswith("/"):
        raise InvalidParameter(f"rootfs must be an absolute path: {inp.rootfs}")
    if not inp.args:
        raise InvalidParameter("no command specified")
    sec = parse_security_opts(inp.security_opt)
    host = inp.host or host_facts()
    available = list(host.capabilities)
    capabilities = capslib.tweak_caps(capslib.DEFAULT_CAPABILITIES, inp.cap_add, inp.cap_drop,
                                      privileged=inp.privileged, available=available)
    user = inp.exec_user or resolve_user(inp.rootfs, inp.user, inp.group_add)
    cgroup_v2 = host.cgroup_v2
    host_hard = dict(host.rlimits)

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
        if not inp.uid_mappings:    # dockerd leaves it alone in a remapped container
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
    if inp.uid_mappings:
        linux["uidMappings"] = [dict(m) for m in inp.uid_mappings]
        linux["gidMappings"] = [dict(m) for m in inp.gid_mappings]

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
            perms = device_permissions(d.cgroup_permissions)
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
