"""The daemon's configuration: flags merged with daemon.json, validated once."""
from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import InvalidParameter
from .logdrivers.options import validate as validate_log_config
from .network.ipam import AddressPool, address_pools, parse_pool_flag


@dataclass(frozen=True)
class Config:
    hosts: tuple[str, ...] = ()
    data_root: str = "/var/lib/pydockerd"
    exec_root: str = "/run/pydockerd"
    pidfile: str = "/var/run/pydockerd.pid"
    group: str = "docker"
    debug: bool = False
    log_level: str = "info"
    tls: bool | None = None
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    bridge: str = "pydocker0"
    bip: str = ""
    fixed_cidr: str = ""
    ipv6: bool = False
    fixed_cidr_v6: str = ""
    ip6tables: bool = True
    default_address_pools: tuple[AddressPool, ...] = ()   # replace moby's defaults
    mtu: int = 1500
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opts: tuple[str, ...] = ()
    ip: str = "0.0.0.0"
    iptables: bool = True
    ip_forward: bool = True
    ip_masq: bool = True
    icc: bool = True
    default_ulimits: tuple[tuple[str, int, int], ...] = ()
    live_restore: bool = False
    shutdown_timeout: int = 15
    default_runtime: str = "runc"
    runtimes: dict[str, str] = field(default_factory=lambda: {"runc": "/usr/sbin/runc"})
    init: bool = False
    init_path: str = "/usr/bin/tini-static"
    no_new_privileges: bool = False
    seccomp_profile: str = ""
    storage_driver: str = ""
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    certs_dir: str = "/etc/docker/certs.d"
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    metrics_addr: str = ""          # host:port of the Prometheus endpoint; "" = off
    userns_remap: str = ""          # "default" | "user[:group]"; "" = no remapping
    labels: tuple[str, ...] = ()    # engine labels (--label key=value), swarm engine.labels
    authorization_plugins: tuple[str, ...] = ()   # legacy authz plugins, in order

    @property
    def socket_paths(self) -> list[str]:
        return [h[len("unix://"):] for h in self.hosts if h.startswith("unix://")]


# daemon.json key -> Config field name (dockerd's spelling on the left)
JSON_KEYS = {
    "hosts": "hosts", "data-root": "data_root", "exec-root": "exec_root", "pidfile": "pidfile",
    "group": "group", "debug": "debug", "log-level": "log_level", "tls": "tls",
    "tlsverify": "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert", "tlskey": "tlskey",
    "bridge": "bridge", "bip": "bip", "fixed-cidr": "fixed_cidr", "mtu": "mtu", "dns": "dns",
    "ipv6": "ipv6", "fixed-cidr-v6": "fixed_cidr_v6", "ip6tables": "ip6tables",
    "default-address-pools": "default_address_pools",
    "dns-search": "dns_search", "dns-opts": "dns_opts", "ip": "ip", "iptables": "iptables",
    "ip-forward": "ip_forward", "ip-masq": "ip_masq", "icc": "icc",
    "default-ulimits": "default_ulimits", "live-restore": "live_restore",
    "shutdown-timeout": "shutdown_timeout", "default-runtime": "default_runtime",
    "runtimes": "runtimes", "init": "init", "init-path": "init_path",
    "no-new-privileges": "no_new_privileges", "seccomp-profile": "seccomp_profile",
    "storage-driver": "storage_driver", "insecure-registries": "insecure_registries",
    "registry-mirrors": "registry_mirrors",
    "max-concurrent-downloads": "max_concurrent_downloads",
    "max-concurrent-uploads": "max_concurrent_uploads",
    "max-download-attempts": "max_download_attempts",
    "log-driver": "log_driver", "log-opts": "log_opts",
    "metrics-addr": "metrics_addr", "userns-remap": "userns_remap", "labels": "labels",
    "authorization-plugins": "authorization_plugins",
}

_ULIMIT_NAMES = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                 "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


# --log-level names -> logging levels
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "error": logging.ERROR, "fatal": logging.CRITICAL}


def logging_level(cfg: Config) -> int:
    """The logging level the configuration asks for (--debug wins over --log-level)."""
    return logging.DEBUG if cfg.debug else LOG_LEVELS.get(cfg.log_level, logging.INFO)


def parse_ulimit(spec: str) -> tuple[str, int, int]:
    """`nofile=1024:2048` -> ("nofile", 1024, 2048)."""
    name, sep, vals = spec.partition("=")
    if not sep or name not in _ULIMIT_NAMES:
        raise InvalidParameter(f"invalid ulimit argument: {spec}")
    soft_s, _, hard_s = vals.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise InvalidParameter(f"invalid ulimit argument: {spec}") from None
    if soft > hard:
        raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: "
                               f"{soft} > {hard}")
    return name, soft, hard


def load_config_file(path: str) -> dict[str, Any]:
    """Read daemon.json; unknown keys are errors, as with dockerd."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            raw = f.read()
        data = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError) as e:
        raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: {e}") \
            from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: "
                               "not a JSON object")
    unknown = sorted(set(data) - set(JSON_KEYS))
    if unknown:
        raise InvalidParameter("the following directives don't match any configuration option: "
                               + ", ".join(unknown))
    return data


def normalise(values: dict[str, Any]) -> Config:
    """Build and validate a Config from field-name -> value pairs."""
    known = {f.name for f in fields(Config)}
    kwargs: dict[str, Any] = {}
    for k, v in values.items():
        if k not in known:
            raise InvalidParameter(f"unknown configuration option {k}")
        if k == "default_ulimits":
            if isinstance(v, dict):  # daemon.json form {"nofile": {"Name":..,"Soft":..,"Hard":..}}
                v = tuple((n, int(u["Soft"]), int(u["Hard"])) for n, u in v.items())
            else:
                v = tuple(parse_ulimit(s) if isinstance(s, str) else s for s in v)
        elif k in ("hosts", "dns", "dns_search", "dns_opts", "insecure_registries",
                   "registry_mirrors", "labels"):
            v = tuple(v)
        elif k == "default_address_pools":
            if not isinstance(v, (list, tuple)):
                raise InvalidParameter("default-address-pools must be a list of "
                                       '{"base": CIDR, "size": prefix length} objects')
            # flags come as `base=...,size=...` strings, daemon.json as objects
            v = address_pools(parse_pool_flag(e) if isinstance(e, str) else e for e in v)
        elif k == "authorization_plugins":
            v = plugin_names(v)
        elif k == "log_opts":
            v = _log_opts(v)
        elif k == "runtimes":
            base = {"runc": "/usr/sbin/runc"}
            for name, spec in dict(v).items():
                base[name] = spec["path"] if isinstance(spec, dict) else spec
            v = base
        kwargs[k] = v
    cfg = Config(**kwargs)
    validate(cfg)
    return cfg


def _validate_labels(labels: tuple[str, ...]) -> None:
    """dockerd's checks of --label: key=value, one value per key."""
    seen: dict[str, str] = {}
    for label in labels:
        if not isinstance(label, str) or "=" not in label:
            raise InvalidParameter(f"bad attribute format: {label}")
        key, _, value = label.partition("=")
        if key in seen and seen[key] != value:
            raise InvalidParameter(f"conflict labels for {key}={seen[key]} and {key}={value}")
        seen[key] = value


def _log_opts(v: Any) -> dict[str, str]:
    """`--log-opt k=v` (repeated) or daemon.json's {"k": "v"}."""
    if isinstance(v, dict):
        if not all(isinstance(x, str) for x in v.values()):
            raise InvalidParameter("log-opts values must be strings")
        return {str(k): x for k, x in v.items()}
    out: dict[str, str] = {}
    for item in v:
        key, sep, val = str(item).partition("=")
        if not sep:
            raise InvalidParameter(f"invalid key value pair format in log-opt: {item}")
        out[key] = val
    return out


def plugin_names(v: object) -> tuple[str, ...]:
    """`authorization-plugins`: a list of plugin names."""
    if not isinstance(v, (list, tuple)) or not all(isinstance(n, str) and n for n in v):
        raise InvalidParameter("authorization-plugins must be a list of plugin names")
    return tuple(v)


def validate(cfg: Config) -> None:
    if cfg.log_level not in LOG_LEVELS:
        raise InvalidParameter(f"unable to parse logging level: {cfg.log_level}")
    _validate_labels(cfg.labels)
    for net in (cfg.bip, cfg.fixed_cidr):
        if net:
            try:
                ipaddress.ip_interface(net)
            except ValueError:
                raise InvalidParameter(f"invalid CIDR address: {net}") from None
    if cfg.fixed_cidr_v6:
        try:
            ipaddress.IPv6Network(cfg.fixed_cidr_v6, strict=False)
        except ValueError:
            raise InvalidParameter(f"invalid fixed-cidr-v6: {cfg.fixed_cidr_v6}") from None
    try:
        ipaddress.ip_address(cfg.ip)
    except ValueError:
        raise InvalidParameter(f"invalid IP address: {cfg.ip}") from None
    for d in cfg.dns:
        try:
            ipaddress.ip_address(d)
        except ValueError:
            raise InvalidParameter(f"{d} is not an ip address") from None
    if not 68 <= cfg.mtu <= 65535:
        raise InvalidParameter(f"invalid MTU {cfg.mtu}")
    if cfg.default_runtime not in cfg.runtimes:
        raise InvalidParameter(f"default runtime {cfg.default_runtime} not found in runtimes")
    if cfg.storage_driver not in ("", "overlay2", "overlay", "vfs"):
        raise InvalidParameter(f"unsupported storage driver: {cfg.storage_driver}")
    for h in cfg.hosts:
        if not h.startswith(("unix://", "tcp://", "fd://")):
            raise InvalidParameter(f"invalid host {h}: only unix://, tcp:// and fd:// are supported")
    # dockerd 20.10's checks: 0 concurrent transfers means no limit, attempts >= 1
    if cfg.max_concurrent_downloads < 0:
        raise InvalidParameter(f"invalid max concurrent downloads: {cfg.max_concurrent_downloads}")
    if cfg.max_concurrent_uploads < 0:
        raise InvalidParameter(f"invalid max concurrent uploads: {cfg.max_concurrent_uploads}")
    if cfg.max_download_attempts <= 0:
        raise InvalidParameter(f"invalid max download attempts: {cfg.max_download_attempts}")
    if cfg.shutdown_timeout < 0:
        raise InvalidParameter("shutdown-timeout must be >= 0")
    if cfg.log_driver != "none":
        try:
            validate_log_config(cfg.log_driver, cfg.log_opts)
        except InvalidParameter as e:
            raise InvalidParameter(f"failed to set log opts: {e.message}") from None
    if cfg.metrics_addr:
        split_host_port(cfg.metrics_addr)


def split_host_port(addr: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port`, `:port` for every address) as Go's net.Listen
    reads it; an invalid one is an error at start-up, as with dockerd."""
    host, sep, port = addr.rpartition(":")
    if not sep or (":" in host and not (host.startswith("[") and host.endswith("]"))):
        raise InvalidParameter(f"listen tcp: address {addr}: missing port in address"
                               if not sep else f"listen tcp: address {addr}: too many colons "
                               "in address")
    if not port.isdigit() or int(port) > 65535:
        raise InvalidParameter(f"listen tcp: address {port}: invalid port")
    host = host[1:-1] if host.startswith("[") else host
    return host, int(port)
