"""The bridge device and its iptables chains: one small async function per setup step.

Every rule lives in chains named after the bridge (PYDOCKER-<bridge>, in the
filter and nat tables), hooked from FORWARD and POSTROUTING. Nothing here ever
touches a device, chain or rule pydockerd did not create.
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
    nets: list[ipaddress.IPv4Network] = []
    for route in json.loads(await run([IP, "-j", "-4", "route", "show", "table", "all"]) or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            try:
                nets.append(ipaddress.IPv4Network(dst, strict=False))
            except ValueError:
                pass
    for link in json.loads(await run([IP, "-j", "-4", "addr", "show"]) or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                nets.append(ipaddress.IPv4Interface(
                    f"{info['local']}/{info['prefixlen']}").network)
    return nets


async def create_bridge(bridge: str, address: ipaddress.IPv4Interface, mtu: int) -> None:
    # a fixed MAC, so the bridge's address does not follow its ports as they come and go
    mac = "02:42:" + ":".join(f"{b:02x}" for b in os.urandom(4))
    await run([IP, "link", "add", "name", bridge, "address", mac, "mtu", str(mtu),
               "type", "bridge"])
    try:
        await run([IP, "addr", "add", str(address), "dev", bridge])
        await run([IP, "link", "set", "dev", bridge, "up"])
    except BaseException:
        await delete_link(bridge)
        raise


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

    def nat_rules(self) -> list[list[str]]:
        if not self.ip_masq or self.internal:
            return []
        return [["-s", self.subnet, "!", "-o", self.bridge, "-j", "MASQUERADE"]]


async def _ensure_chain(table: str, chain: str, rules: list[list[str]], hook: str) -> None:
    if not await ipt(table, "-n", "-L", chain, check=False):
        await ipt(table, "-N", chain)
    await ipt(table, "-F", chain)          # our own chain: rebuilt from the current config
    for rule in rules:
        await ipt(table, "-A", chain, *rule)
    if not await ipt(table, "-C", hook, "-j", chain, check=False):
        await ipt(table, "-I", hook, "1", "-j", chain)


async def install_rules(rules: Rules) -> None:
    chain = chain_name(rules.bridge)
    try:
        await _ensure_chain("filter", chain, rules.filter_rules(), "FORWARD")
        await _ensure_chain("nat", chain, rules.nat_rules(), "POSTROUTING")
    except CommandFailed as e:
        raise SystemError_(f"failed to set up iptables rules for bridge {rules.bridge}: "
                           f"{e.message}") from e


async def remove_rules(bridge: str) -> None:
    chain = chain_name(bridge)
    for table, hook in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
        while await ipt(table, "-D", hook, "-j", chain, check=False):
            pass
        if await ipt(table, "-n", "-L", chain, check=False):
            await ipt(table, "-F", chain)
            await ipt(table, "-X", chain)
