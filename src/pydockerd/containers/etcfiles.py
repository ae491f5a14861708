"""The /etc/hostname, /etc/hosts and /etc/resolv.conf dockerd writes for a container.

`plan_etc_files` runs on the event loop and reads what it needs from the
container and the network service into a frozen `EtcFiles`; `write_etc_files`
runs in a worker thread and touches nothing but that value and the disk.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..config import Config
from ..network import files
from ..util.fsatomic import write_atomic
from . import links
from .deps import Networks
from .model import Container
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
else:   # OpenSSL's digests: loaded by the first one (issue 10: idle memory)
    hashlib = lazy_import("hashlib")


@dataclass(frozen=True)
class EtcFiles:
    hostname_path: str
    hosts_path: str
    resolv_conf_path: str
    copy_from: tuple[str, str, str] | None    # NetworkMode container:<id>: its three files
    hostname: str
    domain: str
    ip: str
    host_network: bool
    extra_hosts: tuple[str, ...]
    host_gateway_ip: str | None
    dns: tuple[str, ...]
    dns_search: tuple[str, ...]
    dns_options: tuple[str, ...]
    embedded_dns: bool


def plan_etc_files(c: Container, networks: Networks, cfg: Config,
                   get: Callable[[str], Container]) -> EtcFiles:
    """On the loop: everything the files depend on, as one frozen value."""
    mode = c.host_config["NetworkMode"]
    copy_from = None
    if mode.startswith("container:"):
        other = get(mode.split(":", 1)[1])
        copy_from = (other.hostname_path, other.hosts_path, other.resolv_conf_path)
    hc = c.host_config
    return EtcFiles(
        hostname_path=c.hostname_path, hosts_path=c.hosts_path,
        resolv_conf_path=c.resolv_conf_path, copy_from=copy_from,
        hostname=c.config.get("Hostname") or c.id[:12], domain=c.config.get("Domainname") or "",
        ip=c.endpoints[0].ip if c.endpoints else "", host_network=mode == "host",
        extra_hosts=(*(hc.get("ExtraHosts") or ()), *links.hosts_entries(c, get)),
        host_gateway_ip=networks.bridge_gateway,
        dns=tuple(hc.get("Dns") or cfg.dns), dns_search=tuple(hc.get("DnsSearch") or cfg.dns_search),
        dns_options=tuple(hc.get("DnsOptions") or cfg.dns_opts),
        embedded_dns=copy_from is None and networks.uses_embedded_dns(c.id))


def write_etc_files(p: EtcFiles, owner: tuple[int, int] | None = None) -> None:
    """In a worker thread: write (or copy) the three files (owned by `owner`, the
    remapped root with --userns-remap, as dockerd)."""
    paths = (p.hostname_path, p.hosts_path, p.resolv_conf_path)
    if p.copy_from is not None:
        for src, dst in zip(p.copy_from, paths):
            shutil.copyfile(src, dst)
    else:
        # written again at every start: atomic (rename), but no fsync
        write_atomic(p.hostname_path, p.hostname + "\n", fsync=False)
        write_atomic(p.hosts_path, hosts_text(p), fsync=False)
        resolv = _resolv_conf(p).encode()
        write_atomic(p.resolv_conf_path, resolv, fsync=False)
        if p.embedded_dns or p.host_network:
            # never switched while it runs: no digest to keep (nor a stale one)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_hash_path(p))
        else:
            write_atomic(_hash_path(p), hashlib.sha256(resolv).hexdigest(), fsync=False)
    if owner is not None:
        for path in paths:
            os.chown(path, *owner)


def hosts_text(p: EtcFiles) -> str:
    if p.host_network:
        with open("/etc/hosts") as f:
            hosts = f.read()
        return hosts + "".join(f"{h.split(':', 1)[1]}\t{h.split(':', 1)[0]}\n"
                               for h in p.extra_hosts if ":" in h)
    return files.hosts_file(p.hostname, p.domain, p.ip, list(p.extra_hosts),
                            host_gateway_ip=p.host_gateway_ip)


def _resolv_conf(p: EtcFiles) -> str:
    if p.embedded_dns:
        return files.embedded_resolv_conf(list(p.dns_search), list(p.dns_options), p.dns)
    return files.resolv_conf(list(p.dns), list(p.dns_search), list(p.dns_options))


def _hash_path(p: EtcFiles) -> str:
    """Where the digest of the resolv.conf we wrote is kept (moby's resolv.conf.hash):
    a file whose content no longer matches it was edited by the user."""
    return p.resolv_conf_path + ".hash"


def _rewrite(path: str, text: str) -> None:
    """Replace a bind-mounted file's content in place: a rename (write_atomic) would
    leave the running container reading the old inode."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def rewrite_resolv_conf(p: EtcFiles) -> bool:
    """In a worker thread, for a running container: resolv.conf again, in place,
    unless the user edited it (as moby: then it is theirs). False if left alone."""
    if p.copy_from is not None or p.host_network:
        return False
    try:
        with open(_hash_path(p)) as f:
            written = f.read().strip()
        with open(p.resolv_conf_path, "rb") as g:
            if hashlib.sha256(g.read()).hexdigest() != written:
                return False
    except FileNotFoundError:
        pass            # written before digests were kept: ours to replace
    text = _resolv_conf(p)
    _rewrite(p.resolv_conf_path, text)
    write_atomic(_hash_path(p), hashlib.sha256(text.encode()).hexdigest(), fsync=False)
    return True


def rewrite_hosts(p: EtcFiles) -> None:
    """In a worker thread, for a running container: /etc/hosts again, in place
    (after its links changed)."""
    if p.copy_from is not None:
        return
    _rewrite(p.hosts_path, hosts_text(p))
