"""The options of POST /build (the classic builder), read from the query string as
moby's newImageBuildOptions does (api/server/router/build/build_routes.go)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .host_config import Ulimit
from .misc import BuildArgs, BuildLabels


@dataclass(frozen=True)
class BuildResources:
    """What the RUN containers get (moby's hostConfigFromOptions): zero means unset."""

    networkmode: str = ""
    extrahosts: list[str] = field(default_factory=list)
    shmsize: int = 0
    ulimits: list[Ulimit] = field(default_factory=list)
    cgroupparent: str = ""
    cpusetcpus: str = ""
    cpusetmems: str = ""
    cpushares: int = 0
    cpuquota: int = 0
    cpuperiod: int = 0
    memory: int = 0
    memswap: int = 0

    def host_config(self) -> dict[str, Any]:
        """The HostConfig document of a RUN step's intermediate container."""
        hc: dict[str, Any] = {"NetworkMode": self.networkmode or "default",
                              "LogConfig": {"Type": "json-file", "Config": {}}}
        if self.extrahosts:
            hc["ExtraHosts"] = list(self.extrahosts)
        if self.ulimits:
            hc["Ulimits"] = [{"Name": u.Name, "Soft": u.Soft or 0, "Hard": u.Hard or 0}
                             for u in self.ulimits]
        for key, value in (("ShmSize", self.shmsize), ("CgroupParent", self.cgroupparent),
                           ("CpusetCpus", self.cpusetcpus), ("CpusetMems", self.cpusetmems),
                           ("CpuShares", self.cpushares), ("CpuQuota", self.cpuquota),
                           ("CpuPeriod", self.cpuperiod), ("Memory", self.memory),
                           ("MemorySwap", self.memswap)):
            if value:
                hc[key] = value
        return hc


@dataclass(frozen=True)
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    buildargs: BuildArgs = field(default_factory=dict)
    labels: BuildLabels = field(default_factory=dict)
    nocache: bool = False
    quiet: bool = False
    target: str = ""
    remote: str = ""                      # a URL: the context is fetched from there
    cachefrom: list[str] = field(default_factory=list)
    resources: BuildResources = field(default_factory=BuildResources)


__all__ = ["BuildArgs", "BuildLabels", "BuildOptions", "BuildResources"]
