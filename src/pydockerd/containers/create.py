"""Validate a create request and merge it with the image's config (Docker's rules)."""
from __future__ import annotations

import copy
import re
import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import InvalidParameter
from ..logdrivers.options import merge_defaults as merge_log_defaults
from ..logdrivers.options import validate as validate_log_config
from ..network.ipam import normalize_mac, parse_ip6
from .mountspec import parse_bind
from .ports import validate_port_bindings

_SIGNAL_RE = re.compile(r"^(SIG)?[A-Z0-9+-]+$|^\d+$")

# HostConfig keys with the defaults dockerd reports in inspect
HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "bridge", "PortBindings": {}, "RestartPolicy": {"Name": "no",
                                                                    "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0],
    "CapAdd": None, "CapDrop": None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [],
    "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
    "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
    "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "",
    "UsernsMode": "", "ShmSize": 67108864, "Runtime": "runc", "Isolation": "",
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": None, "PidsLimit": None,
    "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None, "Init": None,
    "Tmpfs": None, "Sysctls": None, "Mounts": None,
}


def merge_image_config(config: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """Fill the container Config from the image's config, as dockerd does."""
    cfg = copy.deepcopy(config)
    img = image_config or {}
    if not cfg.get("Entrypoint") and cfg.get("Entrypoint") != [] and img.get("Entrypoint"):
        cfg["Entrypoint"] = list(img["Entrypoint"])
        if not cfg.get("Cmd"):
            cfg["Cmd"] = list(img.get("Cmd") or [])
    elif not cfg.get("Cmd") and not cfg.get("Entrypoint"):
        cfg["Cmd"] = list(img.get("Cmd") or [])
    if cfg.get("Entrypoint") == []:
        cfg["Entrypoint"] = None
    env_keys = {e.split("=", 1)[0] for e in cfg.get("Env") or []}
    cfg["Env"] = [e for e in (img.get("Env") or []) if e.split("=", 1)[0] not in env_keys] \
        + list(cfg.get("Env") or [])
    for key in ("WorkingDir", "User", "StopSignal"):
        if not cfg.get(key) and img.get(key):
            cfg[key] = img[key]
    labels = dict(img.get("Labels") or {})
    labels.update(cfg.get("Labels") or {})
    cfg["Labels"] = labels
    ports = dict(img.get("ExposedPorts") or {})
    ports.update(cfg.get("ExposedPorts") or {})
    if ports:
        cfg["ExposedPorts"] = ports
    vols = dict(img.get("Volumes") or {})
    vols.update(cfg.get("Volumes") or {})
    if vols:
        cfg["Volumes"] = vols
    if not cfg.get("Healthcheck") and img.get("Healthcheck"):
        cfg["Healthcheck"] = img["Healthcheck"]
    if not cfg.get("OnBuild") and img.get("OnBuild"):
        cfg["OnBuild"] = None
    for k, v in (("Hostname", ""), ("Domainname", ""), ("AttachStdin", False),
                 ("AttachStdout", False), ("AttachStderr", False), ("Tty", False),
                 ("OpenStdin", False), ("StdinOnce", False), ("WorkingDir", ""),
                 ("User", ""), ("Entrypoint", None), ("OnBuild", None)):
        cfg.setdefault(k, v)
    if not cfg.get("Cmd") and not cfg.get("Entrypoint"):
        raise InvalidParameter("no command specified")
    return cfg


def normalise_host_config(hc: dict[str, Any] | None, daemon_init: bool,
                          runtimes: dict[str, str] | None = None,
                          default_runtime: str = "runc", log_driver: str = "json-file",
                          log_opts: Mapping[str, str] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(HOST_CONFIG_DEFAULTS)
    for k, v in (hc or {}).items():
        out[k] = v
    out["Runtime"] = out.get("Runtime") or default_runtime
    if runtimes is not None and out["Runtime"] not in runtimes:
        raise InvalidParameter(f"unknown or invalid runtime name: {out['Runtime']}")
    # dockerd's mergeAndVerifyLogConfig: the daemon's --log-driver / --log-opt
    lc = merge_log_defaults(out.get("LogConfig"), log_driver, log_opts or {})
    validate_log_config(lc["Type"], lc["Config"])
    out["LogConfig"] = lc
    if not out.get("NetworkMode") or out["NetworkMode"] == "default":
        out["NetworkMode"] = "bridge"
    mode = out["NetworkMode"]
    if not isinstance(mode, str) or (mode.startswith("container:") and not mode[10:]):
        raise InvalidParameter(f"invalid network mode: {mode!r}")
    # any other name must be a user-defined network: ContainerService.create checks it
    # restart policy and resources were checked on the typed request
    # (containers/validate.py); here they only get their stored shape
    rp = out.get("RestartPolicy") or {}
    out["RestartPolicy"] = {"Name": rp.get("Name") or "no",
                            "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0)}
    for b in out.get("Binds") or []:
        src = b.split(":", 1)[0]
        if not src.startswith("/") and ":" in b and re.search(r"[^a-zA-Z0-9_.-]", src):
            raise InvalidParameter(
                f"create {src}: \"{src}\" includes invalid characters for a local volume name, "
                "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
                "directory, use absolute path")
    if out.get("Mounts"):
        for m in out["Mounts"]:
            if m.get("Type") not in ("bind", "tmpfs", "volume"):
                raise InvalidParameter(f"mount type {m.get('Type')!r} is not supported yet")
    validate_port_bindings(out)
    if out.get("UsernsMode") not in ("", None, "host"):
        raise InvalidParameter(f"invalid USER mode: {out.get('UsernsMode')}")
    if out.get("Init") is None and daemon_init:
        pass  # the daemon default applies at start; inspect keeps null like dockerd
    return out


def verify_userns(hc: dict[str, Any]) -> None:
    """dockerd's checks for a daemon with --userns-remap (verifyPlatformContainerSettings):
    what cannot work inside the daemon's user namespace needs `--userns=host`."""
    if hc.get("UsernsMode") == "host":
        return
    if hc.get("Privileged"):
        raise InvalidParameter("privileged mode is incompatible with user namespaces.  You "
                               "must run the container in the host namespace when running "
                               "privileged mode")
    if hc.get("NetworkMode") == "host":
        raise InvalidParameter("cannot share the host's network namespace when user "
                               "namespaces are enabled")
    if hc.get("PidMode") == "host":
        raise InvalidParameter("cannot share the host PID namespace when user namespaces "
                               "are enabled")


def validate_config(cfg: dict[str, Any]) -> None:
    if not isinstance(cfg, dict):
        raise InvalidParameter("invalid container config")
    for key in ("Cmd", "Entrypoint"):
        v = cfg.get(key)
        if isinstance(v, str):
            cfg[key] = [v] if key == "Entrypoint" else ["/bin/sh", "-c", v]
        elif v is not None and not isinstance(v, list):
            raise InvalidParameter(f"invalid {key}")
    sig = cfg.get("StopSignal")
    if sig and not _SIGNAL_RE.match(str(sig).upper()):
        raise InvalidParameter(f"Invalid signal: {sig}")
    for e in cfg.get("Env") or []:
        if not isinstance(e, str) or e.startswith("="):
            raise InvalidParameter(f"invalid environment variable: {e}")


@dataclass(frozen=True)
class VolumeRequest:
    """A volume the container asks for: named, or anonymous (name "")."""
    name: str
    destination: str
    mode: str = ""
    rw: bool = True
    copy_data: bool = True
    driver: str = ""                    # "": an existing volume's, else local
    driver_opts: dict[str, str] | None = None
    labels: dict[str, str] = field(default_factory=dict)


def plan_volumes(hc: dict[str, Any], cfg: dict[str, Any],
                 inherited: set[str] | None = None) -> list[VolumeRequest]:
    """The volumes of Binds (`-v name:/dst`, `-v /dst`), Mounts of type volume and the
    image's/config's Volumes not covered by another mount (or by one of `inherited`,
    the destinations --volumes-from brings), as dockerd's registerMountPoints. A
    destination mounted twice by the user is an error."""
    out: list[VolumeRequest] = []
    dests: set[str] = set()
    volume_driver = str(hc.get("VolumeDriver") or "")   # `--volume-driver`

    def claim(dest: str) -> None:
        if dest in dests:
            raise InvalidParameter(f"Duplicate mount point: {dest}")
        dests.add(dest)

    for b in hc.get("Binds") or []:
        m = parse_bind(b)
        claim(m.destination)
        if m.type == "volume":
            parts = b.split(":")
            mode = parts[2] if len(parts) > 2 else ""
            out.append(VolumeRequest(m.source, m.destination, mode, "ro" not in m.options,
                                     "nocopy" not in m.options, volume_driver))
    for m in hc.get("Mounts") or []:
        target = m.get("Target") or ""
        kind = m.get("Type")
        if not target.startswith("/"):
            raise InvalidParameter(f"invalid mount config for type \"{kind}\": invalid mount "
                                   f"path: '{target}' mount path must be absolute")
        target = posixpath.normpath(target)
        claim(target)
        if kind != "volume":
            continue
        if m.get("BindOptions"):
            raise InvalidParameter("invalid mount config for type \"volume\": BindOptions "
                                   "must not be specified")
        opts = m.get("VolumeOptions") or {}
        dcfg = opts.get("DriverConfig") or {}
        out.append(VolumeRequest(
            m.get("Source") or "", target, "z", not m.get("ReadOnly"),
            not opts.get("NoCopy"), dcfg.get("Name") or "",
            dict(dcfg["Options"]) if dcfg.get("Options") else None,
            dict(opts.get("Labels") or {})))
    for dest in (hc.get("Tmpfs") or {}):
        claim(posixpath.normpath(dest))
    for dest in sorted(cfg.get("Volumes") or {}):
        if not dest.startswith("/"):
            raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
        dest = posixpath.normpath(dest)
        if dest not in dests and dest not in (inherited or ()):
            dests.add(dest)
            out.append(VolumeRequest("", dest, driver=volume_driver))
    return out


def normalise_endpoints(mode: str, networking: dict[str, Any] | None,
                        resolve: Callable[[str], tuple[str, bool]]) -> dict[str, Any]:
    """NetworkingConfig -> {"EndpointsConfig": {network name: settings}}, with the
    NetworkMode network first; `resolve` maps a name/id to (name, predefined) or raises
    NotFound. host/none/container: modes keep no endpoints."""
    if mode in ("host", "none") or mode.startswith("container:"):
        return {"EndpointsConfig": {}}
    given = (networking or {}).get("EndpointsConfig") or {}
    if not isinstance(given, dict):
        raise InvalidParameter("invalid NetworkingConfig: EndpointsConfig must be an object")
    primary, _ = resolve(mode)
    out: dict[str, Any] = {primary: {}}
    for key, settings in given.items():
        name, predefined = resolve("bridge" if key == "default" else key)
        if name in ("host", "none"):
            raise InvalidParameter(f"container cannot be connected to network {name} and "
                                   f"{primary} at the same time")
        settings = dict(settings or {})
        ipam = settings.get("IPAMConfig") or {}
        if predefined and (ipam.get("IPv4Address") or ipam.get("IPv6Address")):
            raise InvalidParameter("invalid endpoint settings:\nuser specified IP address is "
                                   "supported on user defined networks only")
        if ipam.get("IPv6Address"):
            try:
                parse_ip6(str(ipam["IPv6Address"]))
            except InvalidParameter as e:
                raise InvalidParameter(f"invalid endpoint settings:\n{e.message}") from None
        if predefined and settings.get("Aliases"):
            raise InvalidParameter("invalid endpoint settings:\nnetwork-scoped alias is "
                                   "supported only for containers in user defined networks")
        if settings.get("MacAddress"):
            try:
                normalize_mac(settings["MacAddress"])
            except InvalidParameter:
                raise InvalidParameter(f"invalid config for network {key}: invalid MAC "
                                       f"address {settings['MacAddress']}") from None
        out[name] = settings
    return {"EndpointsConfig": out}
