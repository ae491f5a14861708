"""What /version, /info and /system/df report: real values read from this host.

SystemService returns frozen dataclasses (VersionInfo, SystemInfo, SystemDiskUsage);
api/wire_system.py shapes them into Docker's JSON. Its collaborators are the small
Protocols below: only what it reads from each service."""
from __future__ import annotations

import asyncio
import datetime
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

from . import __version__
from .config import Config
from .containers.model import Container
from .images.model import DiskUsage, Image
from .network.model import Network
from .swarm.state import SwarmInfo
from .util.ids import format_time, new_id
from .util.procfs import read_text
from .volumes.model import Volume, VolumeUsage

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(platform.machine(),
                                                                     platform.machine())


def _os_release() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def engine_id(data_root: str) -> str:
    """The daemon's persistent ID (/info's ID; also the seed of its ULA prefix)."""
    return _engine_id(data_root)


def _engine_id(data_root: str) -> str:
    path = os.path.join(data_root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        eid = new_id()
        uuid = f"{eid[:8]}-{eid[8:12]}-{eid[12:16]}-{eid[16:20]}-{eid[20:32]}"
        with open(path, "w") as f:
            f.write(uuid)
        return uuid


class SystemContainers(Protocol):
    def all(self) -> list[Container]: ...
    def state_counts(self) -> dict[str, int]: ...


class SystemImages(Protocol):
    @property
    def storage_driver(self) -> str: ...
    def list_images(self, all: bool = False) -> list[Image]: ...
    def usage(self) -> DiskUsage: ...
    def container_size(self, container_id: str, image_id: str) -> tuple[int, int]: ...


class SystemNetworks(Protocol):
    def list(self) -> list[Network]: ...


class SystemSwarm(Protocol):
    def info(self) -> SwarmInfo: ...


class SystemVolumes(Protocol):
    async def usage(self) -> list[tuple[Volume, VolumeUsage]]: ...


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """The engine's build facts (the API versions are the API layer's own)."""
    version: str
    git_commit: str
    go_version: str                 # the runtime: python3.11.7
    os: str
    arch: str                       # Go's name: amd64, arm64
    kernel_version: str
    build_time: str
    platform_name: str = "pydockerd"
    experimental: bool = False


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """A registry the daemon knows about (docker.io, --insecure-registry hosts)."""
    name: str
    mirrors: list[str]
    secure: bool
    official: bool


@dataclass(frozen=True, slots=True)
class RegistryInfo:
    insecure_cidrs: list[str]
    indexes: list[IndexInfo]
    mirrors: list[str]


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """GET /info's facts about this daemon and host."""
    id: str
    containers: int
    running: int
    paused: int
    images: int
    driver: str
    backing_filesystem: str
    swap_limit: bool
    ipv4_forwarding: bool
    debug: bool
    fds: int
    oom_kill_disable: bool
    tasks: int                      # asyncio tasks, shown as NGoroutines
    system_time: str
    cgroup_version: str
    kernel_version: str
    operating_system: str
    os_version: str
    architecture: str               # uname -m
    registry: RegistryInfo
    ncpu: int
    mem_total: int
    data_root: str
    http_proxy: str
    https_proxy: str
    no_proxy: str
    name: str
    server_version: str
    runtimes: dict[str, str]        # name -> path
    default_runtime: str
    live_restore: bool
    logging_driver: str             # the daemon's default (--log-driver)
    runc_commit: str
    security_options: list[str]
    warnings: list[str]
    labels: list[str] = field(default_factory=list)      # engine labels (--label)
    swarm: SwarmInfo = SwarmInfo()
    authorization_plugins: tuple[str, ...] = ()
    address_pools: tuple[tuple[str, int], ...] = ()   # configured (base, size)

    @property
    def stopped(self) -> int:
        return self.containers - self.running - self.paused


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    container: Container
    size_rw: int
    size_root_fs: int


@dataclass(frozen=True, slots=True)
class SystemDiskUsage:
    """GET /system/df: each part is None when its type was not asked for."""
    images: DiskUsage | None = None
    containers: list[ContainerUsage] | None = None
    network_ids: dict[str, str] = field(default_factory=dict)   # name -> id
    volumes: list[tuple[Volume, VolumeUsage]] | None = None
    build_cache: bool = False


class SystemService:
    def __init__(self, cfg: Config, containers: SystemContainers, images: SystemImages,
                 networks: SystemNetworks, volumes: SystemVolumes | None = None,
                 swarm: SystemSwarm | None = None) -> None:
        self.cfg = cfg
        self.swarm = swarm
        self.volumes = volumes
        self.containers = containers
        self.images = images
        self.networks = networks
        self.engine_id = _engine_id(cfg.data_root)
        self.started = time.time()

    def reload(self, cfg: Config) -> None:
        """SIGHUP: /info reports the reloaded options (live-restore, debug,
        authorization plugins)."""
        self.cfg = cfg

    def version(self) -> VersionInfo:
        return VersionInfo(version=__version__, git_commit="pydockerd",
                           go_version=f"python{sys.version.split()[0]}", os="linux",
                           arch=_ARCH, kernel_version=platform.release(),
                           build_time="2026-11-22T00:00:00.000000000+00:00")

    async def info(self) -> SystemInfo:
        counts = self.containers.state_counts()        # kept by the registry: no walk
        security = ["name=seccomp,profile=" + ("unconfined" if self.cfg.seccomp_profile ==
                                               "unconfined" else "builtin" if not
                                               self.cfg.seccomp_profile else "custom")]
        if self.cfg.userns_remap:
            security.append("name=userns")
        if cgroup_version() == "2":
            security.append("name=cgroupns")
        if self.cfg.no_new_privileges:
            security.append("name=no-new-privileges")
        driver = self.images.storage_driver
        return SystemInfo(
            id=self.engine_id, containers=sum(counts.values()), running=counts["running"],
            paused=counts["paused"],
            # dockerd counts every image, intermediate ones included
            images=len(self.images.list_images(all=True)), driver=driver,
            backing_filesystem=_fs_type(self.cfg.data_root) if driver == "overlay2" else "",
            swap_limit=os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
            or cgroup_version() == "2",
            ipv4_forwarding=read_text("/proc/sys/net/ipv4/ip_forward") == "1",
            debug=self.cfg.debug, fds=len(os.listdir("/proc/self/fd")),
            oom_kill_disable=cgroup_version() == "1", tasks=len(asyncio.all_tasks()),
            system_time=format_time(datetime.datetime.now(datetime.timezone.utc)),
            cgroup_version=cgroup_version(), kernel_version=platform.release(),
            operating_system=_os_release(), os_version=_os_version(),
            architecture=platform.machine(), registry=self._registry_info(),
            ncpu=os.cpu_count() or 1, mem_total=_mem_total(), data_root=self.cfg.data_root,
            http_proxy=os.environ.get("HTTP_PROXY", ""),
            https_proxy=os.environ.get("HTTPS_PROXY", ""),
            no_proxy=os.environ.get("NO_PROXY", ""), name=socket.gethostname(),
            server_version=__version__, runtimes=dict(self.cfg.runtimes),
            default_runtime=self.cfg.default_runtime, live_restore=self.cfg.live_restore,
            logging_driver=self.cfg.log_driver,
            authorization_plugins=self.cfg.authorization_plugins,
            runc_commit=_runc_commit(), security_options=security,
            warnings=self._warnings(),
            labels=list(self.cfg.labels),
            address_pools=tuple((str(p.base), p.size) for p in self.cfg.default_address_pools),
            swarm=self.swarm.info() if self.swarm else SwarmInfo())

    def _registry_info(self) -> RegistryInfo:
        mirrors = [m.rstrip("/") + "/" for m in self.cfg.registry_mirrors]
        cidrs = ["::1/128", "127.0.0.0/8"]
        index = {"docker.io": IndexInfo("docker.io", mirrors, True, True)}
        for reg in self.cfg.insecure_registries:
            if "/" in reg:
                cidrs.append(reg)
            else:
                index[reg] = IndexInfo(reg, [], False, False)
        return RegistryInfo(cidrs, list(index.values()), mirrors)

    def _warnings(self) -> list[str]:
        w = []
        if any(h.startswith("tcp://") for h in self.cfg.hosts) and self.cfg.tls is False:
            w.append("WARNING: API is accessible on http://0.0.0.0 without encryption.")
        if not self.cfg.ip_forward:
            w.append("WARNING: IPv4 forwarding is disabled")
        return w

    async def disk_usage(self, types: list[str]) -> SystemDiskUsage:
        want = set(types) or {"container", "image", "volume", "build-cache"}
        images = await asyncio.to_thread(self.images.usage) if "image" in want else None
        containers: list[ContainerUsage] | None = None
        ids: dict[str, str] = {}
        if "container" in want:
            ids = {n.name: n.id for n in self.networks.list()}
            containers = []
            for c in self.containers.all():
                rw, root = await asyncio.to_thread(self.images.container_size, c.id,
                                                   c.image_id)
                containers.append(ContainerUsage(c, rw, root))
        volumes = None
        if "volume" in want:
            volumes = await self.volumes.usage() if self.volumes is not None else []
        return SystemDiskUsage(images, containers, ids, volumes, "build-cache" in want)


def _os_version() -> str:
    for line in read_text("/etc/os-release").splitlines():
        if line.startswith("VERSION_ID="):
            return line.split("=", 1)[1].strip('"')
    return ""


def _fs_type(path: str) -> str:
    best, fstype = "", "unknown"
    for line in read_text("/proc/self/mounts").splitlines():
        parts = line.split()
        if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) >= len(best):
            best, fstype = parts[1], parts[2]
    return fstype


_RUNC_COMMIT: list[str] = []


def _runc_commit() -> str:
    if not _RUNC_COMMIT:
        import subprocess
        try:
            out = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout
            _RUNC_COMMIT.append(next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                                      if ln.startswith("commit:")), ""))
        except OSError:
            _RUNC_COMMIT.append("")
    return _RUNC_COMMIT[0]


__all__ = ["SystemService", "VersionInfo", "SystemInfo", "SystemDiskUsage", "ContainerUsage",
           "RegistryInfo", "IndexInfo"]
