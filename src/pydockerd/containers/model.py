"""The container model (its state machine is in state.py).

`config` and `host_config` keep Docker's own documents (Config and HostConfig
as the client sent them, merged with the image): they are the container's
spec, echoed back by inspect, and the runtime reads them through the typed
helpers in spec.py. Everything the daemon itself decides lives in typed
fields here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..network.portmap import PortMapping
from .state import Health, State


@dataclass
class Endpoint:
    """The container's attachment to a network, as inspect shows it."""
    network: str
    network_id: str
    endpoint_id: str
    ip: str
    prefix_len: int
    gateway: str
    mac: str
    ip6: str = ""
    prefix_len6: int = 0
    gateway6: str = ""


@dataclass
class VolumeMount:
    """A volume mounted into the container (a MountPoint of Type "volume" in inspect)."""
    name: str
    destination: str
    source: str                         # the volume's _data directory
    driver: str = "local"
    mode: str = ""                      # as the user wrote it ("ro", "z", "nocopy", ...)
    rw: bool = True
    propagation: str = ""
    copy_data: bool = True              # copy the image's files into an empty volume
    anonymous: bool = False             # made for this container: `rm -v` removes it


@dataclass
class BindMount:
    """A bind mount a container got from another one (`--volumes-from`): the source's
    own binds are in its HostConfig; these are the ones it passes on."""
    source: str
    destination: str
    rw: bool = True
    propagation: str = "rprivate"


@dataclass
class Link:
    """A legacy link (`--link name:alias`) to another container on the default bridge;
    its name is `/<this container's name>/<alias>`."""
    alias: str
    child_id: str
    child_name: str                     # the target's name when linked (shown once it is gone)


@dataclass
class Container:
    id: str
    name: str                           # without the leading "/"
    created: str
    image: str                          # as the user wrote it
    image_id: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    path: str = ""
    args: list[str] = field(default_factory=list)
    state: State = field(default_factory=State)
    restart_count: int = 0
    manually_stopped: bool = False      # for unless-stopped and daemon restart
    has_been_started: bool = False
    endpoints: list[Endpoint] = field(default_factory=list)
    log_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    driver: str = "overlay2"
    exec_ids: list[str] = field(default_factory=list)
    networking_config: dict[str, Any] = field(default_factory=dict)
    volumes: list[VolumeMount] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)   # published while running
    links: list[Link] = field(default_factory=list)          # legacy links, as parent
    inherited_binds: list[BindMount] = field(default_factory=list)   # --volumes-from

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """to_dict() as JSON, encoded by msgspec straight from the dataclasses (about
        50x faster than asdict + json.dumps: every state change writes the record)."""
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Container":
        d = dict(d)
        state = State.from_dict(d.pop("state"))
        endpoints = [Endpoint(**e) for e in d.pop("endpoints", [])]
        volumes = [VolumeMount(**v) for v in d.pop("volumes", [])]
        ports = [PortMapping(**p) for p in d.pop("ports", [])]
        links = [Link(**k) for k in d.pop("links", [])]
        binds = [BindMount(**b) for b in d.pop("inherited_binds", [])]
        return cls(**d, state=state, endpoints=endpoints, volumes=volumes, ports=ports,
                   links=links, inherited_binds=binds)


__all__ = ["BindMount", "Container", "Endpoint", "ExecInstance", "Health", "Link", "State",
           "VolumeMount"]


@dataclass
class ExecInstance:
    id: str
    container_id: str
    cmd: list[str]
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    user: str = ""
    privileged: bool = False
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    detach_keys: str = ""
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    started: bool = False
    console_size: tuple[int, int] | None = None
