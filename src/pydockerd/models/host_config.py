"""HostConfig and its parts (moby api/types/container/hostconfig.go), and UpdateConfig."""
from __future__ import annotations

from typing import ClassVar

from .base import Int, Int64, Model, StrMap, StrSlice, UInt, UInt16, UInt32


class RestartPolicy(Model, frozen=True):
    go_type: ClassVar[str] = "container.RestartPolicy"
    Name: str | None = None
    MaximumRetryCount: Int | None = None


class LogConfig(Model, frozen=True):
    go_type: ClassVar[str] = "container.LogConfig"
    Type: str | None = None
    Config: StrMap | None = None


class PortBinding(Model, frozen=True):
    go_type: ClassVar[str] = "nat.PortBinding"
    HostIp: str | None = None
    HostPort: str | None = None


class Ulimit(Model, frozen=True):
    go_type: ClassVar[str] = "units.Ulimit"
    Name: str | None = None
    Soft: Int64 | None = None
    Hard: Int64 | None = None


class DeviceMapping(Model, frozen=True):
    go_type: ClassVar[str] = "container.DeviceMapping"
    PathOnHost: str | None = None
    PathInContainer: str | None = None
    CgroupPermissions: str | None = None


class DeviceRequest(Model, frozen=True):
    go_type: ClassVar[str] = "container.DeviceRequest"
    Driver: str | None = None
    Count: Int | None = None
    DeviceIDs: list[str] | None = None
    Capabilities: list[list[str]] | None = None
    Options: StrMap | None = None


class WeightDevice(Model, frozen=True):
    go_type: ClassVar[str] = "blkiodev.WeightDevice"
    Path: str | None = None
    Weight: UInt16 | None = None


class ThrottleDevice(Model, frozen=True):
    go_type: ClassVar[str] = "blkiodev.ThrottleDevice"
    Path: str | None = None
    Rate: Int64 | None = None


class BindOptions(Model, frozen=True):
    go_type: ClassVar[str] = "mount.BindOptions"
    Propagation: str | None = None
    NonRecursive: bool | None = None
    CreateMountpoint: bool | None = None
    ReadOnlyNonRecursive: bool | None = None
    ReadOnlyForceRecursive: bool | None = None


class Driver(Model, frozen=True):
    go_type: ClassVar[str] = "mount.Driver"
    Name: str | None = None
    Options: StrMap | None = None


class VolumeOptions(Model, frozen=True):
    go_type: ClassVar[str] = "mount.VolumeOptions"
    NoCopy: bool | None = None
    Labels: StrMap | None = None
    Subpath: str | None = None
    DriverConfig: Driver | None = None


class TmpfsOptions(Model, frozen=True):
    go_type: ClassVar[str] = "mount.TmpfsOptions"
    SizeBytes: Int64 | None = None
    Mode: UInt32 | None = None
    Options: list[list[str]] | None = None


_BindOptions = BindOptions
_VolumeOptions = VolumeOptions
_TmpfsOptions = TmpfsOptions


class Mount(Model, frozen=True):
    go_type: ClassVar[str] = "mount.Mount"
    Type: str | None = None
    Source: str | None = None
    Target: str | None = None
    ReadOnly: bool | None = None
    Consistency: str | None = None
    BindOptions: _BindOptions | None = None
    VolumeOptions: _VolumeOptions | None = None
    TmpfsOptions: _TmpfsOptions | None = None


_LogConfig = LogConfig
_RestartPolicy = RestartPolicy


class Resources(Model, frozen=True):
    """container.Resources: shared by HostConfig and UpdateConfig."""
    go_type: ClassVar[str] = "container.Resources"
    CpuShares: Int64 | None = None
    Memory: Int64 | None = None
    NanoCpus: Int64 | None = None
    CgroupParent: str | None = None
    BlkioWeight: UInt16 | None = None
    BlkioWeightDevice: list[WeightDevice] | None = None
    BlkioDeviceReadBps: list[ThrottleDevice] | None = None
    BlkioDeviceWriteBps: list[ThrottleDevice] | None = None
    BlkioDeviceReadIOps: list[ThrottleDevice] | None = None
    BlkioDeviceWriteIOps: list[ThrottleDevice] | None = None
    CpuPeriod: Int64 | None = None
    CpuQuota: Int64 | None = None
    CpuRealtimePeriod: Int64 | None = None
    CpuRealtimeRuntime: Int64 | None = None
    CpusetCpus: str | None = None
    CpusetMems: str | None = None
    Devices: list[DeviceMapping] | None = None
    DeviceCgroupRules: list[str] | None = None
    DeviceRequests: list[DeviceRequest] | None = None
    KernelMemory: Int64 | None = None
    KernelMemoryTCP: Int64 | None = None
    MemoryReservation: Int64 | None = None
    MemorySwap: Int64 | None = None
    MemorySwappiness: Int64 | None = None
    OomKillDisable: bool | None = None
    PidsLimit: Int64 | None = None
    Ulimits: list[Ulimit] | None = None
    CpuCount: Int64 | None = None
    CpuPercent: Int64 | None = None
    IOMaximumIOps: Int64 | None = None
    IOMaximumBandwidth: Int64 | None = None


class HostConfig(Resources, frozen=True):
    go_type: ClassVar[str] = "container.HostConfig"
    Binds: list[str] | None = None
    ContainerIDFile: str | None = None
    LogConfig: _LogConfig | None = None
    NetworkMode: str | None = None
    PortBindings: dict[str, list[PortBinding] | None] | None = None
    RestartPolicy: _RestartPolicy | None = None
    AutoRemove: bool | None = None
    VolumeDriver: str | None = None
    VolumesFrom: list[str] | None = None
    ConsoleSize: list[UInt] | None = None
    Annotations: StrMap | None = None
    CapAdd: StrSlice | None = None
    CapDrop: StrSlice | None = None
    CgroupnsMode: str | None = None
    Dns: list[str] | None = None
    DnsOptions: list[str] | None = None
    DnsSearch: list[str] | None = None
    ExtraHosts: list[str] | None = None
    GroupAdd: list[str] | None = None
    IpcMode: str | None = None
    Cgroup: str | None = None
    Links: list[str] | None = None
    OomScoreAdj: Int | None = None
    PidMode: str | None = None
    Privileged: bool | None = None
    PublishAllPorts: bool | None = None
    ReadonlyRootfs: bool | None = None
    SecurityOpt: list[str] | None = None
    StorageOpt: StrMap | None = None
    Tmpfs: StrMap | None = None
    UTSMode: str | None = None
    UsernsMode: str | None = None
    ShmSize: Int64 | None = None
    Sysctls: StrMap | None = None
    Runtime: str | None = None
    Isolation: str | None = None
    MaskedPaths: list[str] | None = None
    ReadonlyPaths: list[str] | None = None
    Init: bool | None = None
    Mounts: list[Mount] | None = None


class UpdateConfig(Resources, frozen=True):
    """POST /containers/{id}/update."""
    go_type: ClassVar[str] = "container.UpdateConfig"
    RestartPolicy: _RestartPolicy | None = None
