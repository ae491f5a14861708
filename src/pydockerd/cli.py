"""Entry point: dockerd-compatible flags + daemon.json -> Config, then run the daemon."""
from __future__ import annotations

from .util.tlsdefer import import_asyncio_without_ssl

# first, before the configuration's imports bring asyncio in: asyncio without ssl, which
# the first TLS user (--tls, a registry, ...) loads (util/tlsdefer.py; issue 10: idle RSS)
import_asyncio_without_ssl()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from . import __version__  # noqa: E402
from .config import JSON_KEYS, Config, load_config_file, logging_level, normalise  # noqa: E402
from .errors import DockerError  # noqa: E402
from .util.memory import limit_malloc_arenas  # noqa: E402

_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _bool(v: str) -> bool:
    try:
        return _BOOL[v.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"invalid boolean {v!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pydockerd", description="A Docker Engine written in Python",
                                argument_default=argparse.SUPPRESS)
    a = p.add_argument
    a("-H", "--host", dest="hosts", action="append", help="daemon socket(s) to connect to")
    a("--data-root", dest="data_root")
    a("--exec-root", dest="exec_root")
    a("-p", "--pidfile", dest="pidfile")
    a("-G", "--group", dest="group")
    a("-D", "--debug", dest="debug", nargs="?", const=True, type=_bool)
    a("-l", "--log-level", dest="log_level")
    a("--tls", dest="tls", nargs="?", const=True, type=_bool)
    a("--tlsverify", dest="tlsverify", nargs="?", const=True, type=_bool)
    a("--tlscacert", dest="tlscacert")
    a("--tlscert", dest="tlscert")
    a("--tlskey", dest="tlskey")
    a("-b", "--bridge", dest="bridge")
    a("--bip", dest="bip")
    a("--fixed-cidr", dest="fixed_cidr")
    a("--ipv6", dest="ipv6", nargs="?", const=True, type=_bool)
    a("--fixed-cidr-v6", dest="fixed_cidr_v6")
    a("--ip6tables", dest="ip6tables", nargs="?", const=True, type=_bool)
    a("--default-address-pool", dest="default_address_pools", action="append",
      help="default address pool for local networks: base=CIDR,size=N (repeatable)")
    a("--mtu", dest="mtu", type=int)
    a("--dns", dest="dns", action="append")
    a("--dns-search", dest="dns_search", action="append")
    a("--dns-opt", dest="dns_opts", action="append")
    a("--ip", dest="ip")
    a("--iptables", dest="iptables", nargs="?", const=True, type=_bool)
    a("--ip-forward", dest="ip_forward", nargs="?", const=True, type=_bool)
    a("--ip-masq", dest="ip_masq", nargs="?", const=True, type=_bool)
    a("--icc", dest="icc", nargs="?", const=True, type=_bool)
    a("--default-ulimit", dest="default_ulimits", action="append")
    a("--live-restore", dest="live_restore", nargs="?", const=True, type=_bool)
    a("--shutdown-timeout", dest="shutdown_timeout", type=int)
    a("--default-runtime", dest="default_runtime")
    a("--add-runtime", dest="add_runtime", action="append", help="name=path")
    a("--init", dest="init", nargs="?", const=True, type=_bool)
    a("--init-path", dest="init_path")
    a("--no-new-privileges", dest="no_new_privileges", nargs="?", const=True, type=_bool)
    a("--seccomp-profile", dest="seccomp_profile")
    a("-s", "--storage-driver", dest="storage_driver")
    a("--insecure-registry", dest="insecure_registries", action="append")
    a("--label", dest="labels", action="append", help="engine label key=value (repeatable)")
    a("--registry-mirror", dest="registry_mirrors", action="append")
    a("--max-concurrent-downloads", dest="max_concurrent_downloads", type=int)
    a("--max-concurrent-uploads", dest="max_concurrent_uploads", type=int)
    a("--max-download-attempts", dest="max_download_attempts", type=int)
    a("--log-driver", dest="log_driver")
    a("--log-opt", dest="log_opts", action="append", help="key=value")
    a("--metrics-addr", dest="metrics_addr",
      help="address and port to serve the Prometheus metrics API on")
    a("--userns-remap", dest="userns_remap",
      help="user/group setting for user namespaces (default, user[:group])")
    a("--authorization-plugin", dest="authorization_plugins", action="append",
      help="authorization plugin to load (repeatable)")
    a("--config-file", dest="config_file")
    a("--validate", dest="validate", action="store_true")
    a("-v", "--version", dest="version", action="store_true")
    return p


def parse_config(argv: list[str]) -> tuple[Config, argparse.Namespace]:
    parser = build_parser()
    ns, rest = parser.parse_known_args(argv)
    if rest:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"pydockerd: unexpected arguments: {' '.join(rest)}\n")
        sys.exit(2)
    flags: dict[str, Any] = dict(vars(ns))
    for k in ("config_file", "validate", "version"):
        flags.pop(k, None)
    runtimes = {}
    for spec in flags.pop("add_runtime", []):
        name, sep, path = spec.partition("=")
        if not sep:
            raise DockerError(f"invalid runtime {spec}: expected name=path")
        runtimes[name] = path
    if runtimes:
        flags["runtimes"] = runtimes
    config_path = getattr(ns, "config_file", "/etc/docker/daemon.json")
    file_values = load_config_file(config_path)
    conflicts = []
    merged: dict[str, Any] = {}
    for key, value in file_values.items():
        field_name = JSON_KEYS[key]
        if field_name in flags:
            conflicts.append(f"{key}: (from flag: {flags[field_name]}, from file: {value})")
        merged[field_name] = value
    if conflicts:
        raise DockerError("the following directives are specified both as a flag and in the "
                          "configuration file: " + ", ".join(conflicts))
    merged.update(flags)
    if "hosts" not in merged or not merged["hosts"]:
        merged["hosts"] = ["unix:///var/run/docker.sock"]
    if merged.get("debug"):
        merged.setdefault("log_level", "debug")
    return normalise(merged), ns


def main(argv: list[str] | None = None) -> None:
    try:
        cfg, ns = parse_config(sys.argv[1:] if argv is None else argv)
    except DockerError as e:
        sys.stderr.write(f"pydockerd: {e.message}\n")
        sys.exit(1)
    if getattr(ns, "version", False):
        print(f"pydockerd version {__version__}")
        return
    if getattr(ns, "validate", False):
        print("configuration OK")
        return
    logging.basicConfig(level=logging_level(cfg), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_malloc_arenas()   # before any thread: one glibc heap (issue 10: idle RSS)
    from .daemon import run_daemon
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        rc = asyncio.run(run_daemon(cfg, getattr(ns, "config_file", "/etc/docker/daemon.json")))
    except DockerError as e:
        logging.getLogger("pydockerd").error("%s", e.message)
        sys.exit(1)
    sys.exit(rc)
