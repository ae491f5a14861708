"""The /etc/hostname, /etc/hosts and /etc/resolv.conf dockerd writes for a container."""
from __future__ import annotations

import shutil
from typing import Any, Callable

from ..config import Config
from ..util.fsatomic import write_atomic
from .model import Container


def write_etc_files(c: Container, networks: Any, cfg: Config,
                    get: Callable[[str], Container]) -> None:
    hostname = c.config.get("Hostname") or c.id[:12]
    domain = c.config.get("Domainname") or ""
    mode = c.host_config["NetworkMode"]
    if mode.startswith("container:"):
        other = get(mode.split(":", 1)[1])
        for attr in ("hostname_path", "hosts_path", "resolv_conf_path"):
            shutil.copyfile(getattr(other, attr), getattr(c, attr))
        return
    write_atomic(c.hostname_path, hostname + "\n")
    ip = c.endpoints[0].ip if c.endpoints else ""
    if mode == "host":
        with open("/etc/hosts") as f:
            hosts = f.read()
        extra = "".join(f"{h.split(':', 1)[1]}\t{h.split(':', 1)[0]}\n"
                        for h in c.host_config.get("ExtraHosts") or [] if ":" in h)
        write_atomic(c.hosts_path, hosts + extra)
    else:
        write_atomic(c.hosts_path, networks.hosts_file(
            hostname, domain, ip, list(c.host_config.get("ExtraHosts") or [])))
    hc = c.host_config
    write_atomic(c.resolv_conf_path, networks.resolv_conf(
        list(hc.get("Dns") or cfg.dns), list(hc.get("DnsSearch") or cfg.dns_search),
        list(hc.get("DnsOptions") or cfg.dns_opts),
        embedded_dns=networks.uses_embedded_dns(c.id)))
