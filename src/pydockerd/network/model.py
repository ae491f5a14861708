"""Network and endpoint models, as stored (kinds "network", "endpoint", "ipam")."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PREDEFINED = ("bridge", "host", "none")
BUILTIN_DRIVERS = ("bridge", "host", "null")


@dataclass(slots=True)
class Network:
    id: str                            # 64 hex, stable across restarts
    name: str                          # "bridge", "host", "none"
    driver: str                        # "bridge", "host", "null"
    created: str                       # RFC3339Nano
    scope: str = "local"
    subnet: str = ""                   # "10.199.0.0/24"; "" for host/none
    gateway: str = ""                  # "10.199.0.1"
    ip_range: str = ""                 # --fixed-cidr
    aux_addresses: dict[str, str] = field(default_factory=dict)   # IPAM AuxiliaryAddresses
    subnet6: str = ""                  # "fd00:1::/64" when enable_ipv6
    gateway6: str = ""                 # "fd00:1::1"
    ip_range6: str = ""                # --ip-range of the IPv6 config, --fixed-cidr-v6
    aux_addresses6: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    bridge_created: bool = False       # pydockerd created the bridge device (cleanup may delete it)
    bridge_name: str = ""              # user-defined networks: their device (br-<12 hex>)
    ipam_driver: str = "default"       # or a remote IPAM plugin's name
    ipam_options: dict[str, str] = field(default_factory=dict)    # --ipam-opt
    ipam_options_set: bool = False     # the request had IPAM.Options (inspect: {} not null)
    pool_id: str = ""                  # remote IPAM: the IPv4 pool's PoolID
    pool_id6: str = ""                 # remote IPAM: the IPv6 pool's PoolID
    user_subnet: bool = False          # the request named its subnet(s)

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def remote(self) -> bool:
        """Its driver is a plugin (libnetwork's remote driver)."""
        return self.driver not in BUILTIN_DRIVERS

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Network":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})


@dataclass(slots=True)
class Endpoint:
    network_id: str
    endpoint_id: str                   # 64 hex
    container_id: str
    ip: str                            # "10.199.0.2"
    prefix_len: int
    gateway: str
    mac: str
    host_veth: str                     # "veth1a2b3c4"
    netns_path: str = ""
    ifname: str = "eth0"               # the device inside the sandbox: eth0, eth1, ...
    aliases: list[str] = field(default_factory=list)   # network-scoped DNS aliases
    ip6: str = ""                      # "fd00:1::2" on an IPv6 network, else ""
    prefix_len6: int = 0
    gateway6: str = ""
    src_name: str = ""                 # remote driver: the plugin's interface (host name)
    external: bool = False             # remote driver: ProgramExternalConnectivity done
    # remote driver: the Join options (ports, DriverOpts), for a later
    # ProgramExternalConnectivity when this endpoint takes over the default route
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return endpoint_key(self.container_id, self.network_id)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Endpoint":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})


@dataclass(frozen=True, slots=True)
class NetworkMember:
    """A container attached to a network, as network inspect lists it."""
    endpoint: Endpoint
    container_name: str


PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}


@dataclass(frozen=True, slots=True)
class ExposedPort:
    proto: str                         # "tcp", "udp", "sctp"
    port: int

    def to_json(self) -> dict[str, Any]:
        """libnetwork's TransportPort."""
        return {"Proto": PROTO_NUMBERS.get(self.proto, 0), "Port": self.port}


@dataclass(frozen=True, slots=True)
class PortBinding:
    proto: str
    port: int
    host_ip: str
    host_port: int
    host_port_end: int

    def to_json(self) -> dict[str, Any]:
        """libnetwork's PortBinding."""
        return {"Proto": PROTO_NUMBERS.get(self.proto, 0), "IP": "", "Port": self.port,
                "HostIP": self.host_ip, "HostPort": self.host_port,
                "HostPortEnd": self.host_port_end}


@dataclass(frozen=True, slots=True)
class PortOptions:
    """A container's exposed and published ports, as a remote driver gets them in the
    endpoint's options (com.docker.network.endpoint.exposedports, .portmap)."""
    exposed: tuple[ExposedPort, ...] = ()
    bindings: tuple[PortBinding, ...] = ()


def endpoint_key(container_id: str, network_id: str) -> str:
    return f"{container_id}/{network_id}"


def lease_key(network_id: str, ip: str) -> str:
    return f"{network_id}/{ip}"
