"""Create-time checks on the typed request models, with dockerd's messages (moby
daemon/container.go verifyContainerSettings, daemon_unix.go verifyPlatformContainerSettings,
volume/mounts/linux_parser.go validateMountConfig): what is accepted here can be started.

The checks that need daemon state (image, network names, runtimes) or that were already
written for the stored documents stay in containers/create.py (normalise_host_config,
validate_config) and run after these in ContainerService.create.
"""
from __future__ import annotations

import os
import posixpath
import re

from ..errors import InvalidParameter
from ..logdrivers.options import validate as validate_log_config
from ..models import ContainerConfig, HealthConfig, HostConfig, Mount, Resources, UpdateConfig
from ..runtime.caps import normalize_caps
from ..runtime.rlimits import ULIMIT_NAMES
from .mountspec import PROPAGATION_MODES, parse_bind, parse_tmpfs
from .ports import split_port_key

MIN_MEMORY = 6 * 1024 * 1024
_VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_EXPOSED_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp|sctp))?$", re.I)
# moby's opts.ValidateSysctl: IPC sysctls, fs.mqueue.* and net.* (own network namespace)
_SYSCTL_IPC = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
_RESTART_NAMES = ("", "no", "always", "unless-stopped", "on-failure")


def validate_create(cfg: ContainerConfig, hc: HostConfig | None) -> None:
    """Every create-time check on the request; raises InvalidParameter."""
    validate_container_config(cfg)
    if hc is not None:
        validate_host_config(hc)


def validate_container_config(cfg: ContainerConfig) -> None:
    for port in cfg.ExposedPorts or {}:
        m = _EXPOSED_RE.match(port)
        if not m or not 0 < int(m.group(1)) <= 65535 \
                or (m.group(2) and not int(m.group(1)) <= int(m.group(2)) <= 65535):
            raise InvalidParameter(f'invalid port specification: "{port}"')
    for dest in cfg.Volumes or {}:
        if not dest.startswith("/"):
            raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
    if cfg.Healthcheck is not None:
        validate_healthcheck(cfg.Healthcheck)
    for e in cfg.Env or []:
        if e.startswith("=") or not e:
            raise InvalidParameter(f"invalid environment variable: {e}")


def validate_healthcheck(h: HealthConfig) -> None:
    for name in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        v = getattr(h, name)
        if v and v < 1_000_000:
            raise InvalidParameter(f"{name} in Healthcheck cannot be less than 1ms")
    if h.Retries is not None and h.Retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def validate_host_config(hc: HostConfig) -> None:
    validate_resources(hc, update=False)
    validate_restart_policy(hc)
    if hc.LogConfig is not None and hc.LogConfig.Type:
        # an empty Type is the daemon's driver: checked with its options in create.py
        validate_log_config(hc.LogConfig.Type, dict(hc.LogConfig.Config or {}))
    if hc.ShmSize is not None and hc.ShmSize < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if hc.OomScoreAdj is not None and not -1000 <= hc.OomScoreAdj <= 1000:
        raise InvalidParameter(f"Invalid value {hc.OomScoreAdj}, range for oom score adj is "
                               "[-1000, 1000]")
    for caps in (hc.CapAdd, hc.CapDrop):
        normalize_caps(caps or [])
    for b in hc.Binds or []:
        parse_bind(b)
    for m in hc.Mounts or []:
        validate_mount(m)
    for dest, opts in (hc.Tmpfs or {}).items():
        parse_tmpfs(dest, opts)
    for key, bindings in (hc.PortBindings or {}).items():
        split_port_key(key)
        for pb in bindings or []:
            if pb.HostPort and not re.fullmatch(r"\d{1,5}(-\d{1,5})?", pb.HostPort):
                raise InvalidParameter(f"invalid port specification: \"{pb.HostPort}\"")
    validate_sysctls(hc)
    for d in hc.Devices or []:
        if not d.PathOnHost:
            raise InvalidParameter("invalid device mapping: PathOnHost is required")
        if d.CgroupPermissions and any(c not in "rwm" for c in d.CgroupPermissions):
            raise InvalidParameter(f"invalid device mode: {d.CgroupPermissions}")
        if not os.path.exists(d.PathOnHost):
            raise InvalidParameter(f"error gathering device information while adding custom "
                                   f"device \"{d.PathOnHost}\": no such file or directory")
        if d.PathInContainer and not d.PathInContainer.startswith("/"):
            raise InvalidParameter(f"{d.PathInContainer} is not an absolute path")


def validate_restart_policy(hc: HostConfig | UpdateConfig) -> None:
    rp = hc.RestartPolicy
    if rp is None:
        return
    name = rp.Name or ""
    retries = rp.MaximumRetryCount or 0
    if name not in _RESTART_NAMES:
        raise InvalidParameter(f"invalid restart policy: unknown policy '{name}'; use one of "
                               "'no', 'always', 'on-failure', or 'unless-stopped'")
    if retries < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidParameter(f"invalid restart policy: maximum retry count can only be used "
                               f"with 'on-failure'")
    if isinstance(hc, HostConfig) and hc.AutoRemove and name not in ("", "no"):
        raise InvalidParameter("conflicting options: cannot specify both --restart and --rm")


def validate_resources(r: Resources, update: bool) -> None:
    """moby verifyPlatformContainerResources (the checks that do not probe cgroups)."""
    mem, swap, res = r.Memory or 0, r.MemorySwap or 0, r.MemoryReservation or 0
    if mem and mem < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if mem > 0 and swap > 0 and swap < mem:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    if not update and mem == 0 and swap > 0:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap "
                               "limit, see usage")
    sw = r.MemorySwappiness
    if sw is not None and sw != -1 and not 0 <= sw <= 100:
        raise InvalidParameter(f"Invalid value: {sw}, valid memory swappiness range is 0-100")
    if res and res < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if mem > 0 and res > 0 and mem < res:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation "
                               "limit, see usage")
    if r.CpuShares is not None and r.CpuShares < 0:
        raise InvalidParameter(f"invalid CPU shares ({r.CpuShares}): value must be a positive "
                               "integer")
    ncpu = os.cpu_count() or 1
    if r.NanoCpus and (r.NanoCpus < 0 or r.NanoCpus > ncpu * 1_000_000_000):
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                               f"{ncpu} CPUs available")
    if r.NanoCpus and (r.CpuQuota or r.CpuPeriod):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be "
                               "set")
    if r.CpuPeriod and not 1000 <= r.CpuPeriod <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                               "than 1 second (i.e. 1000000)")
    if r.CpuQuota and 0 < r.CpuQuota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if r.BlkioWeight and not 10 <= r.BlkioWeight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if r.PidsLimit is not None and r.PidsLimit < -1:
        raise InvalidParameter(f"invalid PidsLimit {r.PidsLimit}: must be -1 (unlimited), 0 "
                               "(unset) or positive")
    for u in r.Ulimits or []:
        name = (u.Name or "").lower()
        if name not in ULIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {u.Name or ''}")
        if u.Soft is None or u.Hard is None:
            raise InvalidParameter(f"invalid ulimit {name}: Soft and Hard are required")
        if u.Hard >= 0 and (u.Soft < 0 or u.Soft > u.Hard):
            raise InvalidParameter("ulimit soft limit must be less than or equal to hard "
                                   f"limit: {u.Soft} > {u.Hard}")


def validate_sysctls(hc: HostConfig) -> None:
    mode = hc.NetworkMode or ""
    for key in hc.Sysctls or {}:
        if key in _SYSCTL_IPC or key.startswith("fs.mqueue."):
            if (hc.IpcMode or "") == "host":
                raise InvalidParameter(f"sysctl '{key}' not allowed in host IPC namespace")
            continue
        if key.startswith("net."):
            if mode == "host" or mode.startswith("container:"):
                raise InvalidParameter(f"sysctl '{key}' not allowed in host network namespace"
                                       if mode == "host" else
                                       f"sysctl '{key}' not allowed in a shared network "
                                       "namespace")
            continue
        raise InvalidParameter(f"sysctl '{key}' is not allowed")


def validate_mount(m: Mount) -> None:
    """moby's validateMountConfig for the mount types pydockerd supports."""
    kind = m.Type or ""
    bad = f"invalid mount config for type \"{kind}\""
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidParameter(f"mount type {kind!r} is not supported yet" if kind
                               else "invalid mount config: mount type unknown")
    target = m.Target or ""
    if not target:
        raise InvalidParameter(f"{bad}: field Target must not be empty")
    if not target.startswith("/"):
        raise InvalidParameter(f"{bad}: invalid mount path: '{target}' mount path must be "
                               "absolute")
    if posixpath.normpath(target) == "/":
        raise InvalidParameter(f"{bad}: invalid specification: destination can't be '/'")
    extra = [name for name, present in (("BindOptions", m.BindOptions is not None),
                                        ("VolumeOptions", m.VolumeOptions is not None),
                                        ("TmpfsOptions", m.TmpfsOptions is not None))
             if present and not name.lower().startswith(kind)]
    if extra:
        raise InvalidParameter(f"{bad}: field {extra[0]} must not be specified")
    src = m.Source or ""
    if kind == "bind":
        if not src:
            raise InvalidParameter(f"{bad}: field Source must not be empty")
        if not src.startswith("/"):
            raise InvalidParameter(f"{bad}: invalid mount path: '{src}' mount path must be "
                                   "absolute")
        if not os.path.exists(src):
            raise InvalidParameter(f"{bad}: bind source path does not exist: {src}")
        prop = (m.BindOptions.Propagation or "") if m.BindOptions is not None else ""
        if prop and prop not in PROPAGATION_MODES:
            raise InvalidParameter(f"{bad}: invalid propagation mode: {prop}")
    elif kind == "volume":
        if src and not _VOLUME_NAME_RE.match(src):
            raise InvalidParameter(
                f'create {src}: "{src}" includes invalid characters for a local volume '
                'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to '
                "pass a host directory, use absolute path")
    else:
        if src:
            raise InvalidParameter(f"{bad}: field Source must not be specified")
        t = m.TmpfsOptions
        if t is not None and t.SizeBytes is not None and t.SizeBytes < 0:
            raise InvalidParameter(f"{bad}: invalid tmpfs size {t.SizeBytes}")


def validate_update(u: UpdateConfig) -> None:
    validate_resources(u, update=True)
    validate_restart_policy(u)


__all__ = ["validate_create", "validate_host_config", "validate_mount",
           "validate_resources", "validate_restart_policy", "validate_update"]
