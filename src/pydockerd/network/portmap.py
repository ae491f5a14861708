"""Port publishing on the host: bound sockets, iptables DNAT, userland proxies.

For each published port the daemon binds the host socket itself (that is the
"port is already allocated" check, and nothing can take the port afterwards),
hands it to a small proxy process (network/proxy.py, one per port, like
docker-proxy) that forwards 127.0.0.1 and container-to-gateway traffic, and
adds iptables rules for everything else:

  nat    PYPORTS-<bridge>  hooked from PREROUTING and OUTPUT (dst-type LOCAL,
                           not 127/8): `! -i <bridge> --dport H -j DNAT` to C:P
  filter PYPORTS-<bridge>  hooked from FORWARD: ACCEPT new traffic to C:P
                           (the FORWARD policy may be DROP)

A port published on the default address (HostIp "") is bound on 0.0.0.0 and on
[::] (IPV6_V6ONLY), with the same host port, as dockerd does. An IPv6 binding
to a container with an IPv6 address gets the same chains in ip6tables (OUTPUT:
not ::1); to a container without one it is served by its proxy alone.

The chains are ours only; rules carry the container id as a comment. The
proxies run in their own session and outlive the daemon (live-restore); their
pids are recorded with the container.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

from ..errors import CommandFailed, SystemError_
from ..runtime.pidwatch import pid_alive, wait_pid
from .iptables import ipt

log = logging.getLogger("pydockerd.ports")

PROXY_MODULE = "pydockerd.network.proxy"

# (proto, container port, host ip ("" = default), host port min, max (0 = ephemeral))
Request = tuple[str, int, str, int, int]


@dataclass
class PortMapping:
    proto: str
    container_port: int
    host_ip: str
    host_port: int
    container_ip: str
    bridge: str = ""                     # "" = no iptables rules (proxy only)
    proxy_pid: int = 0


def chain_name(bridge: str) -> str:
    return f"PYPORTS-{bridge}"           # 8 + at most 15 chars: fits iptables' 28


def family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _hooks(bridge: str, fam: int = 4) -> list[tuple[str, str, list[str]]]:
    loopback = "127.0.0.0/8" if fam == 4 else "::1/128"
    return [("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL"]),
            ("nat", "OUTPUT", ["!", "-d", loopback, "-m", "addrtype", "--dst-type",
                               "LOCAL"]),
            ("filter", "FORWARD", ["-o", bridge])]


def _rules(cid: str, m: PortMapping) -> list[tuple[str, list[str]]]:
    """The rules of a mapping, in the tables of its container address's family."""
    fam = family(m.container_ip)
    dst = [] if m.host_ip in ("", "0.0.0.0", "::") else ["-d", m.host_ip]
    tag = ["-m", "comment", "--comment", cid[:12]]
    target = f"{m.container_ip}:{m.container_port}" if fam == 4 \
        else f"[{m.container_ip}]:{m.container_port}"
    return [
        ("nat", ["!", "-i", m.bridge, *dst, "-p", m.proto, "-m", m.proto, "--dport",
                 str(m.host_port), *tag, "-j", "DNAT", "--to-destination", target]),
        ("filter", ["-d", f"{m.container_ip}/{32 if fam == 4 else 128}", "!", "-i",
                    m.bridge, "-o", m.bridge, "-p", m.proto, "-m", m.proto, "--dport",
                    str(m.container_port), *tag, "-j", "ACCEPT"]),
    ]


def _host_ips(host_ip: str, default_ip: str) -> list[str]:
    """Where a request binds: its HostIp, or the daemon's --ip; the default 0.0.0.0
    means [::] too (moby 28)."""
    if host_ip:
        return [host_ip]
    return [default_ip, "::"] if default_ip == "0.0.0.0" else [default_ip]


class PortMapper:
    def __init__(self, default_ip: str = "0.0.0.0", iptables: bool = True,
                 ip6tables: bool = True) -> None:
        self.default_ip = default_ip or "0.0.0.0"
        self.iptables = iptables
        self.ip6tables = iptables and ip6tables
        self._chains_ready: set[tuple[str, int]] = set()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------ publish / unpublish

    async def publish(self, cid: str, endpoint: str, bridge: str | None, container_ip: str,
                      requests: list[Request], container_ip6: str = "") -> list[PortMapping]:
        """Bind every host port, add the rules, start the proxies; all or nothing."""
        bound: list[tuple[PortMapping, socket.socket]] = []
        done: list[PortMapping] = []
        try:
            for proto, cport, hip, lo, hi in requests:
                first = 0                     # the [::] twin gets the 0.0.0.0 port
                for ip in _host_ips(hip, self.default_ip):
                    v6 = family(ip) == 6
                    target = container_ip6 if v6 and container_ip6 else container_ip
                    try:
                        sock, port = _bind(proto, ip, lo, hi, endpoint, first)
                    except _NoIPv6:
                        continue              # the host has no IPv6: 0.0.0.0 only
                    first = first or port
                    rules = (self.ip6tables if v6 else self.iptables) and bridge \
                        and family(target) == family(ip)
                    m = PortMapping(proto, cport, ip, port, target,
                                    bridge if rules and bridge else "")
                    bound.append((m, sock))
            for m, sock in bound:
                if m.bridge:
                    fam = family(m.container_ip)
                    await self._ensure_chains(m.bridge, fam)
                    for table, rule in _rules(cid, m):
                        await ipt(table, "-A", chain_name(m.bridge), *rule, family=fam)
                done.append(m)
                m.proxy_pid = self._spawn_proxy(cid, m, sock)
        except BaseException:
            await asyncio.shield(self.unpublish(cid, done))
            raise
        finally:
            for _, sock in bound:
                sock.close()
        return done

    async def unpublish(self, cid: str, mappings: list[PortMapping]) -> None:
        """Stop the proxies and delete the rules; idempotent, never raises."""
        await asyncio.gather(*(self._stop_proxy(cid, m) for m in mappings if m.proxy_pid))
        for m in mappings:
            m.proxy_pid = 0
            if not m.bridge:
                continue
            for table, rule in _rules(cid, m):
                while await ipt(table, "-D", chain_name(m.bridge), *rule, check=False,
                                family=family(m.container_ip)):
                    pass

    # ------------------------------------------------------------ daemon restart

    async def ensure_proxies(self, cid: str, mappings: list[PortMapping]) -> None:
        """Keep the proxies that survived a daemon restart; respawn the missing ones."""
        for m in mappings:
            if m.proxy_pid and is_proxy_of(m.proxy_pid, cid, m):
                continue
            try:
                sock, _ = _bind(m.proto, m.host_ip, m.host_port, m.host_port, cid[:12])
            except _NoIPv6:
                m.proxy_pid = 0
                continue
            except SystemError_ as e:
                log.warning("container %s: cannot publish %s again: %s", cid[:12],
                            m.host_port, e.message)
                m.proxy_pid = 0
                continue
            try:
                m.proxy_pid = self._spawn_proxy(cid, m, sock)
            finally:
                sock.close()

    async def rebuild_rules(self, by_bridge: dict[str, list[tuple[str, PortMapping]]]) -> None:
        """Flush our chains of the given bridges and add the rules of live mappings."""
        if not self.iptables:
            return
        for bridge, mappings in by_bridge.items():
            for fam in (4, 6):
                mine = [(cid, m) for cid, m in mappings if m.bridge
                        and family(m.container_ip) == fam]
                if not mine and not await ipt("nat", "-n", "-L", chain_name(bridge),
                                              check=False, family=fam):
                    continue
                await self._ensure_chains(bridge, fam)
                for table in ("nat", "filter"):
                    await ipt(table, "-F", chain_name(bridge), family=fam)
                for cid, m in mine:
                    for table, rule in _rules(cid, m):
                        await ipt(table, "-A", chain_name(bridge), *rule, family=fam)

    async def remove_chains(self, bridge: str) -> None:
        """Unhook and delete our chains of a bridge (explicit teardown), both families."""
        chain = chain_name(bridge)
        for fam in (4, 6):
            for table, hook, match in _hooks(bridge, fam):
                while await ipt(table, "-D", hook, *match, "-j", chain, check=False,
                                family=fam):
                    pass
            for table in ("nat", "filter"):
                if await ipt(table, "-F", chain, check=False, family=fam):
                    await ipt(table, "-X", chain, check=False, family=fam)
            self._chains_ready.discard((bridge, fam))

    # ------------------------------------------------------------ internals

    async def _ensure_chains(self, bridge: str, fam: int = 4) -> None:
        if (bridge, fam) in self._chains_ready:
            return
        chain = chain_name(bridge)
        try:
            for table in ("nat", "filter"):
                if not await ipt(table, "-n", "-L", chain, check=False, family=fam):
                    await ipt(table, "-N", chain, family=fam)
            for table, hook, match in _hooks(bridge, fam):
                if not await ipt(table, "-C", hook, *match, "-j", chain, check=False,
                                 family=fam):
                    await ipt(table, "-I", hook, "1", *match, "-j", chain, family=fam)
        except CommandFailed as e:
            raise SystemError_(f"failed to set up port publishing rules for bridge {bridge}: "
                               f"{e.message}") from e
        self._chains_ready.add((bridge, fam))

    def _spawn_proxy(self, cid: str, m: PortMapping, sock: socket.socket) -> int:
        fd = sock.fileno()
        argv = [sys.executable, "-m", PROXY_MODULE, "--container-id", cid,
                "--proto", m.proto, "--fd", str(fd), "--host-ip", m.host_ip,
                "--host-port", str(m.host_port), "--container-ip", m.container_ip,
                "--container-port", str(m.container_port)]
        pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
            __file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH"))
                                            if p)
        log.debug("exec: %s", " ".join(argv))
        try:
            proc = subprocess.Popen(argv, pass_fds=[fd], env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            raise SystemError_(f"cannot start the userland proxy: {e}") from e
        self._children[proc.pid] = proc
        return proc.pid

    async def _stop_proxy(self, cid: str, m: PortMapping) -> None:
        pid = m.proxy_pid
        child = self._children.pop(pid, None)
        if child is None and not is_proxy_of(pid, cid, m):
            return                               # gone already (or a reused pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            if child is not None:
                await asyncio.wait_for(asyncio.to_thread(child.wait), 5)
            else:
                await asyncio.wait_for(wait_pid(pid), 5)
        except asyncio.TimeoutError:
            log.warning("userland proxy %d did not exit; killing it", pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if child is not None:
                await asyncio.to_thread(child.wait)


def is_proxy_of(pid: int, cid: str, m: PortMapping) -> bool:
    """Is `pid` the live proxy of this container's mapping (not a reused pid)?"""
    if pid <= 0 or not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return PROXY_MODULE in args and cid in args and str(m.host_port) in args \
        and m.proto in args and m.host_ip in args


class _NoIPv6(Exception):
    """The host cannot bind the implicit [::] twin of a default binding."""


def _bind(proto: str, ip: str, lo: int, hi: int, endpoint: str,
          prefer: int = 0) -> tuple[socket.socket, int]:
    """Bind (and for TCP listen on) the first free port in [lo, hi]; 0 = ephemeral.
    `prefer` (the port the 0.0.0.0 twin got) is tried first. IPv6 sockets are
    IPV6_V6ONLY, so [::] and 0.0.0.0 are two bindings, as dockerd makes them."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    v6 = family(ip) == 6
    last: OSError | None = None
    ports = list(range(lo, hi + 1))
    if prefer:
        ports = [prefer] + ([p for p in ports if p != prefer] if lo else [0])
    for port in ports:
        try:
            sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
        except OSError as e:
            if v6 and ip == "::" and e.errno == errno.EAFNOSUPPORT:
                raise _NoIPv6() from e
            raise
        try:
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if proto == "tcp":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ip, port))
            if proto == "tcp":
                sock.listen(128)
        except OSError as e:
            sock.close()
            if v6 and ip == "::" and e.errno == errno.EADDRNOTAVAIL:
                raise _NoIPv6() from e
            last = e
            continue
        return sock, sock.getsockname()[1]
    host = f"[{ip}]" if v6 else ip
    where = f"{host}:{lo}" if lo == hi else f"{host}:{lo}-{hi}"
    if last is not None and last.errno not in (98,):       # not EADDRINUSE
        raise SystemError_(f"failed to set up container networking: driver failed programming "
                           f"external connectivity on endpoint {endpoint}: Error starting "
                           f"userland proxy: listen {proto}{6 if v6 else 4} {where}: bind: "
                           f"{(last.strerror or str(last)).lower()}")
    raise SystemError_(f"failed to set up container networking: driver failed programming "
                       f"external connectivity on endpoint {endpoint}: Bind for {where} failed: "
                       "port is already allocated")


__all__ = ["PortMapper", "PortMapping", "chain_name", "family", "is_proxy_of"]
