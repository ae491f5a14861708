"""The container-wide `Config.MacAddress` of a create request, moved to the main
network's EndpointSettings.MacAddress as moby's router does (handleMACAddressBC):

- API < 1.44: the container-wide address is the only one (an endpoint's MacAddress is
  dropped, as the old API ignored it); it needs a bridge or user-defined network mode.
- API >= 1.44: the endpoint's field is the real one; a container-wide address is moved
  to the main network's endpoint (it must not contradict it) with a deprecation
  warning, and removed from Config.
"""
from __future__ import annotations

import msgspec

from ..errors import InvalidParameter
from ..models import ContainerCreateRequest, EndpointSettings, NetworkingConfig

DEPRECATED = ("The container-wide MacAddress field is now deprecated. It should be "
              "specified in EndpointsConfig instead.")
_NOT_USER_DEFINED = ("", "default", "bridge", "host", "none")


def _main_network(mode: str) -> str | None:
    """NetworkName() of a bridge or user-defined NetworkMode; None for the others."""
    if mode in ("", "default", "bridge"):
        return "bridge"
    if mode in _NOT_USER_DEFINED or mode.startswith("container:"):
        return None
    return mode


def migrate_mac_address(create: ContainerCreateRequest, api_version: tuple[int, int]
                        ) -> tuple[ContainerCreateRequest, list[str]]:
    """The request with the MAC address where the daemon reads it, and the warnings."""
    mac = create.MacAddress or ""
    mode = (create.HostConfig.NetworkMode if create.HostConfig else None) or ""
    nw = _main_network(mode)
    eps = dict((create.NetworkingConfig.EndpointsConfig if create.NetworkingConfig
                else None) or {})
    if api_version < (1, 44):
        if not mac:
            eps = {k: msgspec.structs.replace(v, MacAddress=None) if v else v
                   for k, v in eps.items()}
            return _with(create, eps, mac), []
        if nw is None:
            raise InvalidParameter("conflicting options: mac-address and the network mode")
        key = next(iter(eps), nw)               # at most one entry before 1.44
        eps[key] = msgspec.structs.replace(eps.get(key) or EndpointSettings(),
                                           MacAddress=mac)
        return _with(create, eps, mac), []
    if not mac:
        return create, []
    if nw is not None:
        key = nw if not eps or nw in eps else ("default" if nw == "bridge"
                                                and "default" in eps else "")
        if not key:
            raise InvalidParameter("unable to migrate container-wide MAC address to a "
                                   "specific network: HostConfig.NetworkMode must match the "
                                   "identity of a network in NetworkSettings.Networks")
        ep = eps.get(key) or EndpointSettings()
        if ep.MacAddress and ep.MacAddress != mac:
            raise InvalidParameter("the container-wide MAC address must match the "
                                   "endpoint-specific MAC address for the main network, or "
                                   "be left empty")
        eps[key] = msgspec.structs.replace(ep, MacAddress=mac)
    return _with(create, eps, None), [DEPRECATED]


def _with(create: ContainerCreateRequest, eps: dict[str, EndpointSettings | None],
          mac: str | None) -> ContainerCreateRequest:
    nc = create.NetworkingConfig or NetworkingConfig()
    if eps or nc.EndpointsConfig is not None:
        nc = msgspec.structs.replace(nc, EndpointsConfig=eps)
    return msgspec.structs.replace(create, MacAddress=mac or None,
                                   NetworkingConfig=nc if create.NetworkingConfig or eps
                                   else None)


__all__ = ["DEPRECATED", "migrate_mac_address"]
