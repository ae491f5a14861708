"""Docker's JSON for networks (network.Inspect / network.Summary and the prune
response), from the network area's dataclasses. Network.to_doc is the store's
document, not this."""
from __future__ import annotations

from typing import Any, Mapping

from ..network import Network, NetworkMember


def _ipam_config(subnet: str, ip_range: str, gateway: str,
                 aux: Mapping[str, str]) -> dict[str, Any]:
    """One IPAM.Config entry, in moby's IPAMConfig field order."""
    cfg: dict[str, Any] = {"Subnet": subnet}
    if ip_range:
        cfg["IPRange"] = ip_range
    cfg["Gateway"] = gateway
    if aux:
        cfg["AuxiliaryAddresses"] = dict(aux)
    return cfg


def network(net: Network, members: list[NetworkMember] | None = None) -> dict[str, Any]:
    """GET /networks/{id} (members: the attached containers) and each entry of GET
    /networks (members None: `Containers` is empty there, as dockerd's list)."""
    containers: dict[str, Any] = {}
    for m in members or []:
        ep = m.endpoint
        containers[ep.container_id] = {
            "Name": m.container_name,
            "EndpointID": ep.endpoint_id,
            "MacAddress": ep.mac,
            "IPv4Address": f"{ep.ip}/{ep.prefix_len}",
            "IPv6Address": f"{ep.ip6}/{ep.prefix_len6}" if ep.ip6 else "",
        }
    config: list[dict[str, Any]] = []
    if net.subnet:
        config.append(_ipam_config(net.subnet, net.ip_range, net.gateway, net.aux_addresses))
    if net.enable_ipv6 and net.subnet6:
        config.append(_ipam_config(net.subnet6, net.ip_range6, net.gateway6,
                                   net.aux_addresses6))
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": net.scope,
        "Driver": net.driver,
        "EnableIPv4": net.enable_ipv4,
        "EnableIPv6": net.enable_ipv6,
        "IPAM": {"Driver": net.ipam_driver,
                 # as the request had them: null when it had none, as dockerd
                 "Options": dict(net.ipam_options) if net.ipam_options
                 or net.ipam_options_set else None,
                 "Config": config},
        "Internal": net.internal,
        "Attachable": net.attachable,
        "Ingress": net.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": dict(net.options),
        "Labels": dict(net.labels),
    }


def created(net: Network) -> dict[str, Any]:
    """POST /networks/create."""
    return {"Id": net.id, "Warning": ""}


def prune_report(deleted: list[str]) -> dict[str, Any]:
    """POST /networks/prune."""
    return {"NetworksDeleted": deleted or None}


__all__ = ["network", "created", "prune_report"]
