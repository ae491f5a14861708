"""Typed request models of the Engine API, named after moby's Go types (api/types).

api/decode.py turns request bytes into these; routes validate them and hand the
services what they take (see docs/ARCHITECTURE.md, "The API edge")."""
from .base import Empty, Model, from_doc, to_doc
from .container import ContainerConfig, ContainerCreateRequest, HealthConfig
from .exec import ExecConfig, ExecStartConfig
from .host_config import (BindOptions, DeviceMapping, DeviceRequest, HostConfig, LogConfig,
                          Mount, PortBinding, Resources, RestartPolicy, ThrottleDevice,
                          TmpfsOptions, Ulimit, UpdateConfig, VolumeOptions, WeightDevice)
from .misc import AuthConfig, BuildArgs, BuildLabels, VolumeCreateOptions
from .network import (IPAM, EndpointIPAMConfig, EndpointSettings, IPAMConfig,
                      NetworkConnect, NetworkCreateRequest, NetworkDisconnect,
                      NetworkingConfig)

__all__ = [
    "AuthConfig", "BindOptions", "BuildArgs", "BuildLabels", "ContainerConfig",
    "ContainerCreateRequest", "DeviceMapping", "DeviceRequest", "Empty", "EndpointIPAMConfig",
    "EndpointSettings", "ExecConfig", "ExecStartConfig", "HealthConfig", "HostConfig", "IPAM",
    "IPAMConfig", "LogConfig", "Model", "Mount", "NetworkConnect", "NetworkCreateRequest",
    "NetworkDisconnect", "NetworkingConfig", "PortBinding", "Resources", "RestartPolicy",
    "ThrottleDevice", "TmpfsOptions", "Ulimit", "UpdateConfig", "VolumeCreateOptions",
    "VolumeOptions", "WeightDevice", "from_doc", "to_doc",
]
