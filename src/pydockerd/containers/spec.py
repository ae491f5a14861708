"""Turn a container (Docker's Config + HostConfig) into the runtime's SpecInput.

`SpecFactory.prepare` runs on the event loop (it reads the container and, for
shared pid/ipc namespaces, other containers) and returns a fresh SpecInput that
nothing else holds; `SpecFactory.build` turns it into config.json in a worker
thread.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from ..config import Config
from ..network.sandbox import userns_of
from ..util.idmap import IDENTITY, IdMap
from ..errors import InvalidParameter, SystemError_
from ..runtime.oci_spec import build_resources, build_spec
from ..runtime.rlimits import Ulimit
from ..runtime.spec_input import DeviceSpec, MountSpec, SpecInput
from ..util.mounts import mount_of
from . import links
from .mountspec import bind_propagation, parse_bind, parse_tmpfs
from .model import Container


def _mounts(c: Container) -> list[MountSpec]:
    mounts: list[MountSpec] = []
    for b in c.host_config.get("Binds") or []:
        m = parse_bind(b)
        if m.type == "volume":
            continue                    # in c.volumes, resolved at start
        if not os.path.exists(m.source):
            # dockerd creates a missing bind source directory
            os.makedirs(m.source, exist_ok=True)
        mounts.append(m)
    for dest, opts in (c.host_config.get("Tmpfs") or {}).items():
        mounts.append(parse_tmpfs(dest, opts))
    for m in c.host_config.get("Mounts") or []:
        kind, target = m.get("Type"), m.get("Target") or ""
        if kind == "bind":
            src = m.get("Source") or ""
            if not src.startswith("/"):
                raise InvalidParameter(f"invalid mount config for type \"bind\": invalid mount "
                                       f"path: '{src}' mount path must be absolute")
            if not os.path.exists(src):
                raise InvalidParameter(f"invalid mount config for type \"bind\": bind source "
                                       f"path does not exist: {src}")
            prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
            mode = f"{'ro' if m.get('ReadOnly') else 'rw'},{prop}"
            mounts.append(parse_bind(f"{src}:{target}:{mode}"))
        elif kind == "tmpfs":
            opts = m.get("TmpfsOptions") or {}
            extra = []
            if opts.get("SizeBytes"):
                extra.append(f"size={opts['SizeBytes']}")
            if opts.get("Mode"):
                extra.append(f"mode={opts['Mode']:o}")
            if m.get("ReadOnly"):
                extra.append("ro")
            mounts.append(parse_tmpfs(target, extra))
    for b in c.inherited_binds:         # --volumes-from
        if not os.path.exists(b.source):
            os.makedirs(b.source, exist_ok=True)
        mounts.append(MountSpec(b.destination, b.source, "bind",
                                ["rbind", *([] if b.rw else ["ro"]), b.propagation]))
    for v in c.volumes:
        mounts.append(MountSpec(v.destination, v.source, "bind",
                                ["rbind", *([] if v.rw else ["ro"]), v.propagation or "rprivate"]))
    # the files dockerd manages, unless the user mounted something there
    taken = {m.destination for m in mounts}
    ro = ["ro"] if c.host_config.get("ReadonlyRootfs") else []
    for dest, src in (("/etc/resolv.conf", c.resolv_conf_path),
                      ("/etc/hostname", c.hostname_path), ("/etc/hosts", c.hosts_path)):
        if dest not in taken and src:
            mounts.append(MountSpec(dest, src, "bind", ["rbind", "rprivate", *ro]))
    return mounts


def check_propagation(m: MountSpec) -> None:
    """moby's ensureShared / ensureSharedOrSlave: a shared (slave) bind needs a
    source on a shared (shared or slave) mount."""
    prop = bind_propagation(m)
    if prop in ("private", "rprivate"):
        return
    point, fields = mount_of(m.source)
    shared = any(f.startswith("shared:") for f in fields)
    if prop in ("shared", "rshared") and not shared:
        raise SystemError_(f"path {m.source} is mounted on {point} but it is not a "
                           "shared mount")
    if not shared and not any(f.startswith("master:") for f in fields):
        raise SystemError_(f"path {m.source} is mounted on {point} but it is not a "
                           "shared or slave mount")


def _checked(mounts: list[MountSpec]) -> list[MountSpec]:
    for m in mounts:
        if m.type == "bind":
            check_propagation(m)
    return mounts


def container_mounts(c: Container) -> list[MountSpec]:
    """What is mounted into the container's rootfs at start (binds, tmpfs, volumes,
    the /etc files), as the spec gets it; `docker cp` sees the same mounts."""
    return _mounts(c)


Lookup = Callable[[str], Container]


def _ns_path(mode: str, get: Lookup, kind: str) -> str:
    if mode in ("", "private", "shareable"):
        return ""
    if mode == "host":
        return "host"
    if mode.startswith("container:"):
        other = get(mode.split(":", 1)[1])
        if not other.state.running:
            raise InvalidParameter(f"cannot join {kind} namespace of a non running container")
        return f"/proc/{other.state.pid}/ns/{kind}"
    raise InvalidParameter(f"invalid {kind} mode: {mode}")


def resource_fields(hc: dict[str, Any]) -> dict[str, Any]:
    """The SpecInput fields that come from HostConfig's resources (also `docker update`)."""
    return dict(
        memory=int(hc.get("Memory") or 0), memory_swap=int(hc.get("MemorySwap") or 0),
        memory_reservation=int(hc.get("MemoryReservation") or 0),
        memory_swappiness=hc.get("MemorySwappiness"),
        nano_cpus=int(hc.get("NanoCpus") or 0), cpu_shares=int(hc.get("CpuShares") or 0),
        cpu_quota=int(hc.get("CpuQuota") or 0), cpu_period=int(hc.get("CpuPeriod") or 0),
        cpuset_cpus=hc.get("CpusetCpus") or "", cpuset_mems=hc.get("CpusetMems") or "",
        pids_limit=hc.get("PidsLimit"), blkio_weight=int(hc.get("BlkioWeight") or 0),
        oom_kill_disable=hc.get("OomKillDisable"))


def update_resources(hc: dict[str, Any]) -> dict[str, Any]:
    """The `runc update --resources` document for a (new) HostConfig."""
    return build_resources(SpecInput(**resource_fields(hc)))


def read_seccomp_profile(cfg: Config) -> str | None:
    """The daemon's --seccomp-profile (read once: it cannot change at run time)."""
    if not cfg.seccomp_profile or cfg.seccomp_profile == "unconfined":
        return cfg.seccomp_profile or None
    with open(cfg.seccomp_profile) as f:
        return f.read()


def _userns(c: Container, netns: str | None, ids: IdMap) -> dict[str, Any]:
    """The SpecInput fields of --userns-remap: the daemon's mappings, in the user
    namespace that owns the container's network namespace (its sandbox's, or the
    one of the container whose network it shares, as dockerd)."""
    if not ids.remapped or c.host_config.get("UsernsMode") == "host":
        return {}
    uids, gids = ids.oci()
    path = ""
    if netns and netns.startswith("/proc/"):
        path = os.path.join(os.path.dirname(netns), "user")
    elif netns:
        path = userns_of(netns)
    return dict(uid_mappings=uids, gid_mappings=gids, userns_path=path)


def spec_input(c: Container, rootfs: str, netns: str | None, cfg: Config, get: Lookup,
               seccomp_profile: str | None, ids: IdMap = IDENTITY) -> SpecInput:
    hc, cc = c.host_config, c.config
    init = hc.get("Init")
    if init is None:
        init = cfg.init
    security = list(hc.get("SecurityOpt") or [])
    devices = []
    for d in hc.get("Devices") or []:
        devices.append(DeviceSpec(d.get("PathOnHost", ""), d.get("PathInContainer", ""),
                                  d.get("CgroupPermissions") or "rwm"))
    pid_mode = _ns_path(hc.get("PidMode") or "", get, "pid")
    ipc_mode = _ns_path(hc.get("IpcMode") or "", get, "ipc")
    return SpecInput(
        container_id=c.id, rootfs=rootfs, args=[c.path, *c.args],
        env=[*links.link_env(c, get), *(cc.get("Env") or [])],
        cwd=cc.get("WorkingDir") or "/", user=cc.get("User") or "",
        group_add=list(hc.get("GroupAdd") or []), tty=c.tty,
        open_stdin=bool(cc.get("OpenStdin")), hostname=cc.get("Hostname") or "",
        domainname=cc.get("Domainname") or "",
        readonly_rootfs=bool(hc.get("ReadonlyRootfs")), privileged=bool(hc.get("Privileged")),
        cap_add=list(hc.get("CapAdd") or []), cap_drop=list(hc.get("CapDrop") or []),
        security_opt=security, daemon_no_new_privileges=cfg.no_new_privileges,
        seccomp_profile=seccomp_profile, mounts=_checked(_mounts(c)),
        shm_size=int(hc.get("ShmSize") or 64 << 20),
        netns_path=netns, netns_shared=hc["NetworkMode"].startswith("container:"),
        pid_mode="host" if pid_mode == "host" else pid_mode,
        ipc_mode="host" if ipc_mode == "host" else ipc_mode,
        uts_host=hc.get("UTSMode") == "host",
        **resource_fields(hc),
        cgroups_path=f"/pydockerd/{c.id}", oom_score_adj=int(hc.get("OomScoreAdj") or 0),
        sysctls=dict(hc.get("Sysctls") or {}), devices=devices,
        ulimits=[Ulimit(u["Name"], int(u["Soft"]), int(u["Hard"]))
                 for u in hc.get("Ulimits") or []],
        default_ulimits=[Ulimit(n, s, h) for n, s, h in cfg.default_ulimits],
        init=bool(init), init_path=cfg.init_path,
        masked_paths=_copy(hc.get("MaskedPaths")), readonly_paths=_copy(hc.get("ReadonlyPaths")),
        **_userns(c, netns, ids),
    )


def _copy(paths: list[str] | None) -> list[str] | None:
    return None if paths is None else list(paths)


class SpecFactory:
    """The spec builder the container service is given (see deps.SpecBuilder)."""

    def __init__(self, cfg: Config, ids: IdMap = IDENTITY) -> None:
        self.cfg = cfg
        self.ids = ids
        self._seccomp = read_seccomp_profile(cfg)

    def prepare(self, c: Container, rootfs: str, netns: str | None, get: Lookup) -> SpecInput:
        """On the loop: a SpecInput that shares nothing with live records."""
        return spec_input(c, rootfs, netns, self.cfg, get, self._seccomp, self.ids)

    def build(self, si: SpecInput) -> dict[str, Any]:
        """In a worker thread: the OCI config.json document."""
        return build_spec(si)
