"""What /version, /info and /system/df report: real values read from this host."""
from __future__ import annotations

import asyncio
import os
import platform
import socket
import sys
import time
from typing import Any

from . import __version__
from .api.server import API_VERSION, MIN_API_VERSION, version_str
from .config import Config
from .util.ids import format_time, new_id
from .util.procfs import read_text

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


class SystemService:
    def __init__(self, cfg: Config, containers: Any, images: Any, networks: Any,
                 volumes: Any = None) -> None:
        self.cfg = cfg
        self.volumes = volumes
        self.containers = containers
        self.images = images
        self.networks = networks
        self.engine_id = _engine_id(cfg.data_root)
        self.started = time.time()

    def version(self) -> dict[str, Any]:
        details = {"ApiVersion": version_str(API_VERSION),
                   "MinAPIVersion": version_str(MIN_API_VERSION), "GitCommit": "pydockerd",
                   "GoVersion": f"python{sys.version.split()[0]}", "Os": "linux",
                   "Arch": _ARCH, "KernelVersion": platform.release(),
                   "BuildTime": "2026-11-22T00:00:00.000000000+00:00", "Experimental": "false"}
        return {
            "Platform": {"Name": "pydockerd"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__, "ApiVersion": details["ApiVersion"],
            "MinAPIVersion": details["MinAPIVersion"], "GitCommit": "pydockerd",
            "GoVersion": details["GoVersion"], "Os": "linux", "Arch": _ARCH,
            "KernelVersion": platform.release(), "BuildTime": details["BuildTime"],
        }

    async def info(self) -> dict[str, Any]:
        cs = self.containers.all()
        running = sum(1 for c in cs if c.state.status == "running")
        paused = sum(1 for c in cs if c.state.status == "paused")
        security = ["name=seccomp,profile=" + ("unconfined" if self.cfg.seccomp_profile ==
                                               "unconfined" else "builtin" if not
                                               self.cfg.seccomp_profile else "custom")]
        if cgroup_version() == "2":
            security.append("name=cgroupns")
        if self.cfg.no_new_privileges:
            security.append("name=no-new-privileges")
        driver = self.images.storage_driver
        return {
            "ID": self.engine_id, "Containers": len(cs), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(cs) - running - paused,
            "Images": len(self.images.list_images()), "Driver": driver,
            "DriverStatus": [["Backing Filesystem", _fs_type(self.cfg.data_root)],
                             ["Supports d_type", "true"], ["Using metacopy", "false"],
                             ["Native Overlay Diff", "true"], ["userxattr", "false"]]
            if driver == "overlay2" else [],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                        "Authorization": None, "Log": ["json-file", "local", "none"]},
            "MemoryLimit": True, "SwapLimit": os.path.exists(
                "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
            or cgroup_version() == "2",
            "KernelMemoryTCP": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
            "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding":
                read_text("/proc/sys/net/ipv4/ip_forward") == "1",
            "Debug": self.cfg.debug, "NFd": len(os.listdir("/proc/self/fd")),
            "OomKillDisable": cgroup_version() == "1",
            "NGoroutines": len(asyncio.all_tasks()), "SystemTime": format_time(
                __import__("datetime").datetime.now(__import__("datetime").timezone.utc)),
            "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version(), "NEventsListener": 0,
            "KernelVersion": platform.release(), "OperatingSystem": _os_release(),
            "OSVersion": _os_version(), "OSType": "linux", "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": self._registry_config(),
            "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(),
            "GenericResources": None, "DockerRootDir": self.cfg.data_root,
            "HttpProxy": os.environ.get("HTTP_PROXY", ""),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
            "NoProxy": os.environ.get("NO_PROXY", ""), "Name": socket.gethostname(),
            "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
            "Runtimes": {n: {"path": p} for n, p in self.cfg.runtimes.items()},
            "DefaultRuntime": self.cfg.default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": self.cfg.live_restore, "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": _runc_commit()},
            "InitCommit": {"ID": "tini"}, "SecurityOptions": security,
            "CDISpecDirs": [], "Warnings": self._warnings(),
            "DefaultAddressPools": None, "FirewallBackend": {"Driver": "iptables"},
            "Containerd": None,
        }

    def _registry_config(self) -> dict[str, Any]:
        mirrors = [m.rstrip("/") + "/" for m in self.cfg.registry_mirrors]
        cidrs = ["::1/128", "127.0.0.0/8"]
        index: dict[str, Any] = {"docker.io": {"Name": "docker.io", "Mirrors": mirrors,
                                               "Secure": True, "Official": True}}
        for reg in self.cfg.insecure_registries:
            if "/" in reg:
                cidrs.append(reg)
            else:
                index[reg] = {"Name": reg, "Mirrors": [], "Secure": False, "Official": False}
        return {"AllowNondistributableArtifactsCIDRs": None,
                "AllowNondistributableArtifactsHostnames": None,
                "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index, "Mirrors": mirrors}

    def _warnings(self) -> list[str]:
        w = []
        if any(h.startswith("tcp://") for h in self.cfg.hosts) and self.cfg.tls is False:
            w.append("WARNING: API is accessible on http://0.0.0.0 without encryption.")
        if not self.cfg.ip_forward:
            w.append("WARNING: IPv4 forwarding is disabled")
        return w

    async def disk_usage(self, types: list[str]) -> dict[str, Any]:
        from .api import wire_containers
        want = set(types) or {"container", "image", "volume", "build-cache"}
        out: dict[str, Any] = {}
        layers_size, images = await asyncio.to_thread(self.images.disk_usage) \
            if "image" in want else (0, [])
        if "image" in want:
            out["LayersSize"] = layers_size
            out["Images"] = images
        if "container" in want:
            ids = {n.name: n.id for n in self.networks.list()}
            docs = []
            for c in self.containers.all():
                size = await asyncio.to_thread(self.images.container_size, c.id, c.image_id)
                docs.append(wire_containers.summary(c, ids, size))
            out["Containers"] = docs
        if "volume" in want:
            from .api.routes.volumes import volume_to_wire
            usage = await self.volumes.usage() if self.volumes is not None else []
            out["Volumes"] = [volume_to_wire(v, u) for v, u in usage]
        if "build-cache" in want:
            out["BuildCache"] = []
        return out


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


__all__ = ["SystemService"]
