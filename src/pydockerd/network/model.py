"""Network and endpoint models, as stored (kinds "network", "endpoint", "ipam")."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PREDEFINED = ("bridge", "host", "none")


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

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

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


def endpoint_key(container_id: str, network_id: str) -> str:
    return f"{container_id}/{network_id}"


def lease_key(network_id: str, ip: str) -> str:
    return f"{network_id}/{ip}"
