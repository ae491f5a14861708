"""A legacy ("v1") network + IPAM plugin written for the tests. It speaks the real
protocol (NetworkDriver.* and IpamDriver.*, libnetwork's remote driver and remote IPAM)
over a unix socket and does what a real plugin does: CreateNetwork makes a Linux bridge
with the network's gateway address, Join makes a veth pair (`ip link add`), puts the host
end on that bridge and names the other end for the daemon to move into the container
(InterfaceName SrcName/DstPrefix), with the gateway and a static route; Leave deletes it.
Its IPAM hands out a pool and addresses from it. Every call is recorded (VolumePlugin's
server and records)."""
from __future__ import annotations

import ipaddress
import os
import subprocess
from typing import Any

from plugin_helpers import VolumePlugin

GATEWAY_TYPE = "com.docker.network.gateway"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class NetworkPlugin(VolumePlugin):
    """`pool` is the subnet its IPAM gives when none is asked for; `tag` (a few
    characters) names its bridges and veths so parallel runs never clash. `fail` maps
    a method to the Err it answers (500); `errors_in_200` answers those errors with a
    200 carrying Err, as some plugins do."""

    def __init__(self, root: str, socket_path: str, tag: str, pool: str,
                 implements: tuple[str, ...] = ("NetworkDriver", "IpamDriver"),
                 scope: str = "local", dst_prefix: str = "eth",
                 requires_mac: bool = True, own_mac: bool = False) -> None:
        super().__init__(root, socket_path=socket_path, implements=implements)
        self.tag = tag
        self.default_pool = pool
        self.net_scope = scope
        self.dst_prefix = dst_prefix
        self.requires_mac = requires_mac
        self.own_mac = own_mac          # answer CreateEndpoint with a MAC of its own
        self.fail: dict[str, str] = {}
        self.errors_in_200 = False
        self.networks: dict[str, dict[str, Any]] = {}     # id -> CreateNetwork body
        self.endpoints: dict[str, dict[str, Any]] = {}    # endpoint id -> CreateEndpoint
        self.pools: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        self.allocated: dict[str, set[str]] = {}          # pool id -> addresses
        self.links: set[str] = set()                      # devices it made
        self.static_route = "192.0.2.0/24"                # Join's StaticRoutes entry
        self._n = 0

    # ---- names -------------------------------------------------------------------

    def bridge_of(self, nid: str) -> str:
        return f"pnb{self.tag}{nid[:6]}"

    def veth_of(self, eid: str) -> tuple[str, str]:
        return f"pnh{self.tag}{eid[:6]}", f"pnc{self.tag}{eid[:6]}"

    # ---- the protocol ------------------------------------------------------------

    def handle(self, method: str, body: Any) -> tuple[int, dict[str, Any]]:
        if method == "Plugin.Activate":
            return 200, {"Implements": self.implements}
        if method in self.fail:
            return (200 if self.errors_in_200 else 500), {"Err": self.fail[method]}
        kind, _, verb = method.partition(".")
        if kind not in self.implements:
            return 404, {"Err": f"unknown method {method}"}
        handler = getattr(self, f"_{kind}_{verb}", None)
        if handler is None:
            return 404, {"Err": f"404 page not found: {method}"}
        with self.lock:
            try:
                return 200, handler(body or {})
            except (subprocess.CalledProcessError, KeyError, ValueError) as e:
                detail = e.stderr if isinstance(e, subprocess.CalledProcessError) else e
                return 500, {"Err": f"{method} failed: {detail}"}

    # NetworkDriver

    def _NetworkDriver_GetCapabilities(self, body: dict) -> dict:
        return {"Scope": self.net_scope, "ConnectivityScope": self.net_scope}

    def _NetworkDriver_CreateNetwork(self, body: dict) -> dict:
        nid = body["NetworkID"]
        br = self.bridge_of(nid)
        ip("link", "add", br, "type", "bridge")
        self.links.add(br)
        for data in body.get("IPv4Data") or []:
            if data.get("Gateway"):
                ip("addr", "add", data["Gateway"], "dev", br)
        ip("link", "set", br, "up")
        self.networks[nid] = body
        return {}

    def _NetworkDriver_DeleteNetwork(self, body: dict) -> dict:
        nid = body["NetworkID"]
        self.networks.pop(nid)
        br = self.bridge_of(nid)
        ip("link", "del", br)
        self.links.discard(br)
        return {}

    def _NetworkDriver_CreateEndpoint(self, body: dict) -> dict:
        if body["NetworkID"] not in self.networks:
            raise KeyError(f"no network {body['NetworkID']}")
        self.endpoints[body["EndpointID"]] = body
        iface = body.get("Interface") or {}
        if self.own_mac:
            return {"Interface": {"MacAddress": f"7a:00:00:00:00:{len(self.endpoints):02x}"}}
        return {}

    def _NetworkDriver_DeleteEndpoint(self, body: dict) -> dict:
        self.endpoints.pop(body["EndpointID"])
        return {}

    def _NetworkDriver_EndpointOperInfo(self, body: dict) -> dict:
        # the ports it was given, as the bridge driver reports them (dockerd shows none
        # of a remote driver's: its JSON is not the []types.PortBinding it looks for)
        opts = (self.endpoints.get(body["EndpointID"]) or {}).get("Options") or {}
        return {"Value": {"plugin": "netplugin", "endpoint": body["EndpointID"][:12],
                          "com.docker.network.portmap":
                              opts.get("com.docker.network.portmap") or [],
                          "com.docker.network.endpoint.exposedports":
                              opts.get("com.docker.network.endpoint.exposedports") or []}}

    def _NetworkDriver_Join(self, body: dict) -> dict:
        eid, nid = body["EndpointID"], body["NetworkID"]
        host, peer = self.veth_of(eid)
        ip("link", "add", host, "type", "veth", "peer", "name", peer)
        self.links.add(host)
        ip("link", "set", host, "master", self.bridge_of(nid), "up")
        gw = ""
        for data in self.networks[nid].get("IPv4Data") or []:
            gw = (data.get("Gateway") or "").split("/")[0]
        return {"InterfaceName": {"SrcName": peer, "DstPrefix": self.dst_prefix},
                "Gateway": gw,
                "StaticRoutes": [{"Destination": self.static_route, "RouteType": 0,
                                  "NextHop": gw}] if gw else []}

    def _NetworkDriver_Leave(self, body: dict) -> dict:
        host, _ = self.veth_of(body["EndpointID"])
        if os.path.exists(f"/sys/class/net/{host}"):
            ip("link", "del", host)
        self.links.discard(host)
        return {}

    def _NetworkDriver_DiscoverNew(self, body: dict) -> dict:
        return {}

    def _NetworkDriver_DiscoverDelete(self, body: dict) -> dict:
        return {}

    def _NetworkDriver_ProgramExternalConnectivity(self, body: dict) -> dict:
        return {}

    def _NetworkDriver_RevokeExternalConnectivity(self, body: dict) -> dict:
        return {}

    # IpamDriver

    def _IpamDriver_GetCapabilities(self, body: dict) -> dict:
        return {"RequiresMACAddress": self.requires_mac}

    def _IpamDriver_GetDefaultAddressSpaces(self, body: dict) -> dict:
        return {"LocalDefaultAddressSpace": "plocal", "GlobalDefaultAddressSpace": "pglobal"}

    def _IpamDriver_RequestPool(self, body: dict) -> dict:
        if body.get("V6"):
            pool = ipaddress.ip_network(body.get("Pool") or "fd00:7e57::/64")
        else:
            pool = ipaddress.ip_network(body.get("Pool") or self.default_pool)
        self._n += 1
        pid = f"{body.get('AddressSpace')}/{pool}/{self._n}"
        self.pools[pid] = pool
        self.allocated[pid] = set()
        return {"PoolID": pid, "Pool": str(pool), "Data": {}}

    def _IpamDriver_ReleasePool(self, body: dict) -> dict:
        self.pools.pop(body["PoolID"])
        self.allocated.pop(body["PoolID"])
        return {}

    def _IpamDriver_RequestAddress(self, body: dict) -> dict:
        pid = body["PoolID"]
        pool, used = self.pools[pid], self.allocated[pid]
        if body.get("Address"):
            addr = ipaddress.ip_address(body["Address"])
            if str(addr) in used:
                raise ValueError(f"address {addr} already allocated")
        else:
            addr = next(h for h in pool.hosts() if str(h) not in used)
        used.add(str(addr))
        return {"Address": f"{addr}/{pool.prefixlen}", "Data": {}}

    def _IpamDriver_ReleaseAddress(self, body: dict) -> dict:
        self.allocated[body["PoolID"]].discard(body["Address"])
        return {}

    # ---- clean-up ----------------------------------------------------------------

    def remove_links(self) -> None:
        """Delete whatever devices the plugin made and still has (after a failed test)."""
        for link in list(self.links):
            if os.path.exists(f"/sys/class/net/{link}"):
                subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
            self.links.discard(link)
