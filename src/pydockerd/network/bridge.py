"""The bridge device and its iptables chains: one small async function per setup step.

Every rule lives in chains named after the bridge (PYDOCKER-<bridge>, in the
filter and nat tables), hooked from FORWARD and POSTROUTING; a network with IPv6
gets the same chains in ip6tables, with the same rules for its IPv6 subnet. Nothing
here ever touches a device, chain or rule pydockerd did not create.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import dataclass

from ..errors import CommandFailed, SystemError_
from ..util.cmd import run
from .iptables import ipt

log = logging.getLogger("pydockerd.network")

IP = "ip"


def chain_name(bridge: str) -> str:
    return f"PYDOCKER-{bridge}"     # a bridge name has at most 15 chars: fits iptables' 28


# ---------------------------------------------------------------- the device

async def bridge_address(bridge: str) -> tuple[bool, ipaddress.IPv4Interface | None]:
    """(device exists, its first IPv4 address or None)."""
    if not await link_exists(bridge):
        return False, None
    out = await run([IP, "-j", "-4", "addr", "show", "dev", bridge])
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                return True, ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
    return True, None


async def link_exists(name: str) -> bool:
    try:
        await run([IP, "link", "show", "dev", name])
    except CommandFailed:
        return False
    return True


async def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host routes or has an address on."""
    return [n for n in await _host_networks(4) if isinstance(n, ipaddress.IPv4Network)]


async def host_networks6() -> list[ipaddress.IPv6Network]:
    """Every IPv6 network the host routes or has an address on (not link-local)."""
    return [n for n in await _host_networks(6) if isinstance(n, ipaddress.IPv6Network)
            and not n.is_link_local and not n.is_multicast]


async def _host_networks(family: int) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    fam = f"-{family}"
    for route in json.loads(await run([IP, "-j", fam, "route", "show", "table", "all"])
                            or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            try:
                nets.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                pass
    for link in json.loads(await run([IP, "-j", fam, "addr", "show"]) or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") in ("inet", "inet6"):
                nets.append(ipaddress.ip_interface(
                    f"{info['local']}/{info['prefixlen']}").network)
    return nets


async def create_bridge(bridge: str, address: ipaddress.IPv4Interface, mtu: int,
                        address6: ipaddress.IPv6Interface | None = None) -> None:
    # a fixed MAC, so the bridge's address does not follow its ports as they come and go
    mac = "02:42:" + ":".join(f"{b:02x}" for b in os.urandom(4))
    await run([IP, "link", "add", "name", bridge, "address", mac, "mtu", str(mtu),
               "type", "bridge"])
    try:
        await run([IP, "addr", "add", str(address), "dev", bridge])
        if address6 is not None:
            await add_address6(bridge, address6)
        await run([IP, "link", "set", "dev", bridge, "up"])
    except BaseException:
        await delete_link(bridge)
        raise


async def add_address6(dev: str, address: ipaddress.IPv6Interface) -> None:
    """The IPv6 gateway address on a bridge (idempotent; no DAD, as libnetwork)."""
    _set_sysctl(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "0")
    out = await run([IP, "-j", "-6", "addr", "show", "dev", dev])
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            if info.get("local") == str(address.ip) and \
                    info.get("prefixlen") == address.network.prefixlen:
                return
    await run([IP, "-6", "addr", "add", str(address), "dev", dev, "nodad"])


def _set_sysctl(path: str, value: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        log.warning("cannot set %s to %s: %s", path, value, e)


async def set_up(name: str) -> None:
    await run([IP, "link", "set", "dev", name, "up"])


async def delete_link(name: str) -> bool:
    """Delete a device; False if it was not there."""
    try:
        await run([IP, "link", "del", "dev", name])
    except CommandFailed as e:
        if "Cannot find device" in e.stderr or "does not exist" in e.stderr:
            return False
        raise
    return True


# ---------------------------------------------------------------- sysctls

async def enable_ip_forward() -> None:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() == "1":
                return
    except OSError:
        pass
    await run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])


async def enable_ip6_forward() -> None:
    """IPv6 forwarding, as dockerd turns it on for an IPv6 network (host routers that
    rely on router advertisements then need accept_ra=2: dockerd's caveat too)."""
    try:
        with open("/proc/sys/net/ipv6/conf/all/forwarding") as f:
            if f.read().strip() == "1":
                return
    except OSError:
        return                                     # no IPv6 in this kernel
    await run(["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])


async def enable_bridge_netfilter() -> None:
    """No-ICC needs bridged traffic to traverse iptables (br_netfilter)."""
    if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        log.warning("icc=false: br_netfilter is not loaded, traffic between containers "
                    "on the bridge cannot be filtered")
        return
    with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
        if f.read().strip() == "1":
            return
    await run(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"])


# ---------------------------------------------------------------- iptables

@dataclass(frozen=True)
class Rules:
    bridge: str
    subnet: str
    icc: bool = True
    ip_masq: bool = True
    internal: bool = False              # --internal: nothing in or out, only the bridge
    isolate: tuple[str, ...] = ()       # our other bridges: no traffic to them (Docker's
                                        # DOCKER-ISOLATION), dropped here before any ACCEPT
    subnet6: str = ""                   # IPv6 subnet: the same chains in ip6tables

    def filter_rules(self) -> list[list[str]]:
        b = self.bridge
        rules = [["-i", b, "-o", other, "-j", "DROP"] for other in self.isolate if other != b]
        if self.internal:
            rules += [["-i", b, "!", "-o", b, "-j", "DROP"],
                      ["-o", b, "!", "-i", b, "-j", "DROP"]]
        rules += [
            ["-i", b, "-o", b, "-j", "ACCEPT" if self.icc else "DROP"],
            ["-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
        ]
        if not self.internal:
            rules.append(["-i", b, "!", "-o", b, "-j", "ACCEPT"])
        return rules

    def nat_rules(self, family: int = 4) -> list[list[str]]:
        if not self.ip_masq or self.internal:
            return []
        subnet = self.subnet if family == 4 else self.subnet6
        return [["-s", subnet, "!", "-o", self.bridge, "-j", "MASQUERADE"]]


async def _ensure_chain(table: str, chain: str, rules: list[list[str]], hook: str,
                        family: int) -> None:
    if not await ipt(table, "-n", "-L", chain, check=False, family=family):
        await ipt(table, "-N", chain, family=family)
    await ipt(table, "-F", chain, family=family)   # our own chain: rebuilt from the config
    for rule in rules:
        await ipt(table, "-A", chain, *rule, family=family)
    if not await ipt(table, "-C", hook, "-j", chain, check=False, family=family):
        await ipt(table, "-I", hook, "1", "-j", chain, family=family)


async def install_rules(rules: Rules) -> None:
    """The bridge's chains in iptables, and in ip6tables when it has an IPv6 subnet
    (else any ip6tables chain of ours left from an earlier config goes)."""
    chain = chain_name(rules.bridge)
    try:
        await _ensure_chain("filter", chain, rules.filter_rules(), "FORWARD", 4)
        await _ensure_chain("nat", chain, rules.nat_rules(), "POSTROUTING", 4)
        if rules.subnet6:
            await _ensure_chain("filter", chain, rules.filter_rules(), "FORWARD", 6)
            await _ensure_chain("nat", chain, rules.nat_rules(6), "POSTROUTING", 6)
        else:
            await _remove_chains(chain, 6)
    except CommandFailed as e:
        raise SystemError_(f"failed to set up iptables rules for bridge {rules.bridge}: "
                           f"{e.message}") from e


async def remove_rules(bridge: str) -> None:
    chain = chain_name(bridge)
    for family in (4, 6):
        await _remove_chains(chain, family)


async def _remove_chains(chain: str, family: int) -> None:
    for table, hook in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
        while await ipt(table, "-D", hook, "-j", chain, check=False, family=family):
            pass
        if await ipt(table, "-n", "-L", chain, check=False, family=family):
            await ipt(table, "-F", chain, family=family)
            await ipt(table, "-X", chain, family=family)
