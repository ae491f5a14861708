"""Docker's JSON for GET /version, GET /info and GET /system/df (types.Version,
system.Info, types.DiskUsage), from SystemService's dataclasses. The constant parts
(plugins, swarm, commits) and the API versions live here: they are the API's."""
from __future__ import annotations

from typing import Any

from ..logdrivers.options import SUPPORTED as LOG_DRIVERS
from ..swarm.state import INACTIVE, SwarmInfo
from ..system import RegistryInfo, SystemDiskUsage, SystemInfo, VersionInfo
from . import wire_containers, wire_images, wire_volumes
from .version import API_VERSION, MIN_API_VERSION, ApiVersion, version_str


def version(v: VersionInfo) -> dict[str, Any]:
    api, min_api = version_str(API_VERSION), version_str(MIN_API_VERSION)
    details = {"ApiVersion": api, "MinAPIVersion": min_api, "GitCommit": v.git_commit,
               "GoVersion": v.go_version, "Os": v.os, "Arch": v.arch,
               "KernelVersion": v.kernel_version, "BuildTime": v.build_time,
               "Experimental": "true" if v.experimental else "false"}
    return {
        "Platform": {"Name": v.platform_name},
        "Components": [{"Name": "Engine", "Version": v.version, "Details": details}],
        "Version": v.version, "ApiVersion": api, "MinAPIVersion": min_api,
        "GitCommit": v.git_commit, "GoVersion": v.go_version, "Os": v.os, "Arch": v.arch,
        "KernelVersion": v.kernel_version, "BuildTime": v.build_time,
    }


def registry_config(r: RegistryInfo) -> dict[str, Any]:
    return {"AllowNondistributableArtifactsCIDRs": None,
            "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": list(r.insecure_cidrs),
            "IndexConfigs": {i.name: {"Name": i.name, "Mirrors": list(i.mirrors),
                                      "Secure": i.secure, "Official": i.official}
                             for i in r.indexes},
            "Mirrors": list(r.mirrors)}


def _driver_status(i: SystemInfo) -> list[list[str]]:
    if i.driver != "overlay2":
        return []
    return [["Backing Filesystem", i.backing_filesystem], ["Supports d_type", "true"],
            ["Using metacopy", "false"], ["Native Overlay Diff", "true"],
            ["userxattr", "false"]]


def swarm_info(s: SwarmInfo) -> dict[str, Any]:
    """swarm.Info: a worker's never has Cluster, Nodes or Managers (manager-only)."""
    out: dict[str, Any] = {"NodeID": s.node_id, "NodeAddr": s.node_addr,
                           "LocalNodeState": s.state, "ControlAvailable": False,
                           "Error": s.error, "RemoteManagers": None}
    if s.state != INACTIVE and s.managers is not None:
        out["RemoteManagers"] = [{"NodeID": m.node_id, "Addr": m.addr} for m in s.managers]
    return out


def info(i: SystemInfo) -> dict[str, Any]:
    return {
        "ID": i.id, "Containers": i.containers, "ContainersRunning": i.running,
        "ContainersPaused": i.paused, "ContainersStopped": i.stopped,
        "Images": i.images, "Driver": i.driver, "DriverStatus": _driver_status(i),
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": list(i.authorization_plugins) or None,
                    "Log": list(LOG_DRIVERS)},
        "MemoryLimit": True, "SwapLimit": i.swap_limit,
        "KernelMemoryTCP": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": i.ipv4_forwarding,
        "Debug": i.debug, "NFd": i.fds, "OomKillDisable": i.oom_kill_disable,
        "NGoroutines": i.tasks, "SystemTime": i.system_time,
        "LoggingDriver": i.logging_driver, "CgroupDriver": "cgroupfs",
        "CgroupVersion": i.cgroup_version, "NEventsListener": 0,
        "KernelVersion": i.kernel_version, "OperatingSystem": i.operating_system,
        "OSVersion": i.os_version, "OSType": "linux", "Architecture": i.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(i.registry),
        "NCPU": i.ncpu, "MemTotal": i.mem_total,
        "GenericResources": None, "DockerRootDir": i.data_root,
        "HttpProxy": i.http_proxy, "HttpsProxy": i.https_proxy, "NoProxy": i.no_proxy,
        "Name": i.name, "Labels": list(i.labels), "ExperimentalBuild": False,
        "ServerVersion": i.server_version,
        "Runtimes": {n: {"path": p} for n, p in i.runtimes.items()},
        "DefaultRuntime": i.default_runtime,
        "Swarm": swarm_info(i.swarm),
        "LiveRestoreEnabled": i.live_restore, "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": i.runc_commit},
        "InitCommit": {"ID": "tini"}, "SecurityOptions": list(i.security_options),
        "CDISpecDirs": [], "Warnings": list(i.warnings),
        "DefaultAddressPools": [{"Base": b, "Size": s} for b, s in i.address_pools] or None, "FirewallBackend": {"Driver": "iptables"},
        "Containerd": None,
    }


def disk_usage(du: SystemDiskUsage, api_version: ApiVersion = API_VERSION) -> dict[str, Any]:
    """GET /system/df; image summaries in the request's API version (VirtualSize < 1.44)."""
    out: dict[str, Any] = {}
    if du.images is not None:
        out.update(wire_images.disk_usage(du.images, api_version))
    if du.containers is not None:
        out["Containers"] = [wire_containers.summary(u.container, du.network_ids,
                                                     (u.size_rw, u.size_root_fs))
                             for u in du.containers]
    if du.volumes is not None:
        out["Volumes"] = [wire_volumes.volume(v, u) for v, u in du.volumes]
    if du.build_cache:
        out["BuildCache"] = []
    return out


__all__ = ["version", "info", "disk_usage", "registry_config"]
