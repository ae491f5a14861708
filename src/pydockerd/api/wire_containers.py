"""Containers in Docker's wire format (inspect document, list summary, status text)."""
from __future__ import annotations

import time
from typing import Any

from ..containers.model import Container
from ..containers.mountspec import PROPAGATION_MODES
from ..containers.ports import inspect_ports, summary_ports
from ..util.ids import to_unix


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as `docker ps` prints it."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = round(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def status_text(c: Container) -> str:
    st = c.state
    now = time.time()
    if st.status == "running" or st.status == "paused":
        text = "Up " + human_duration(now - to_unix(st.started_at))
        if st.status == "paused":
            text += " (Paused)"
        elif st.health is not None:
            text += {"starting": " (health: starting)", "healthy": " (healthy)",
                     "unhealthy": " (unhealthy)"}.get(st.health.status, "")
        return text
    if st.status == "restarting":
        return f"Restarting ({st.exit_code}) {human_duration(now - to_unix(st.finished_at))} ago"
    if st.status == "removing":
        return "Removal In Progress"
    if st.status == "dead":
        return "Dead"
    if st.status == "exited" and to_unix(st.finished_at) > 0:
        return f"Exited ({st.exit_code}) {human_duration(now - to_unix(st.finished_at))} ago"
    return "Created"


def _command(c: Container) -> str:
    parts = [c.path, *c.args]
    return " ".join(p if " " not in p else f'"{p}"' for p in parts if p is not None)


def _network_entry(c: Container, ep: Any, aliases: bool = False) -> dict[str, Any]:
    return {"IPAMConfig": None, "Links": None, "Aliases": None,
            "MacAddress": ep.mac if ep else "", "DriverOpts": None, "GwPriority": 0,
            "NetworkID": ep.network_id if ep else "", "EndpointID": ep.endpoint_id if ep else "",
            "Gateway": ep.gateway if ep else "", "IPAddress": ep.ip if ep else "",
            "IPPrefixLen": ep.prefix_len if ep else 0,
            "IPv6Gateway": ep.gateway6 if ep else "",
            "GlobalIPv6Address": ep.ip6 if ep else "",
            "GlobalIPv6PrefixLen": ep.prefix_len6 if ep else 0, "DNSNames": None}


def networks_of(c: Container, network_ids: dict[str, str]) -> dict[str, Any]:
    mode = c.host_config.get("NetworkMode", "bridge")
    if mode.startswith("container:"):
        return {}
    configs = (c.networking_config or {}).get("EndpointsConfig") or {}
    out: dict[str, Any] = {}
    for name in list(configs) or [mode]:
        ep = next((e for e in c.endpoints if e.network == name), None)
        entry = _network_entry(c, ep)
        if not entry["NetworkID"]:
            entry["NetworkID"] = network_ids.get(name, "")
        settings = configs.get(name) or {}
        # the EndpointSettings the client gave, as moby keeps them (even before start)
        for key in ("IPAMConfig", "Links", "Aliases", "DriverOpts"):
            entry[key] = settings.get(key)
        if ep is None and not c.has_been_started:
            entry["MacAddress"] = settings.get("MacAddress") or ""   # the one asked for
        if name not in ("bridge", "host", "none"):     # user-defined: embedded DNS names
            entry["DNSNames"] = [c.name, c.short_id, *(entry["Aliases"] or [])]
        out[name] = entry
    return out


def mounts_of(c: Container) -> list[dict[str, Any]]:
    out = []
    for b in c.host_config.get("Binds") or []:
        parts = b.split(":")
        if not parts[0].startswith("/"):
            continue                    # a volume: listed from c.volumes below
        src, dst = parts[0], parts[1] if len(parts) > 1 else parts[0]
        opts = parts[2].split(",") if len(parts) > 2 else []
        prop = next((o for o in opts if o in PROPAGATION_MODES), "rprivate")
        out.append({"Type": "bind", "Source": src, "Destination": dst,
                    "Mode": parts[2] if len(parts) > 2 else "", "RW": "ro" not in opts,
                    "Propagation": prop})
    for m in c.host_config.get("Mounts") or []:
        if m.get("Type") == "bind":
            prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
            out.append({"Type": "bind", "Source": m.get("Source", ""),
                        "Destination": m.get("Target", ""), "Mode": "",
                        "RW": not m.get("ReadOnly"), "Propagation": prop})
        elif m.get("Type") == "tmpfs":
            out.append({"Type": "tmpfs", "Source": "", "Destination": m.get("Target", ""),
                        "Mode": "", "RW": not m.get("ReadOnly"), "Propagation": ""})
    for b in c.inherited_binds:
        out.append({"Type": "bind", "Source": b.source, "Destination": b.destination,
                    "Mode": "", "RW": b.rw, "Propagation": b.propagation})
    for v in c.volumes:
        out.append({"Type": "volume", "Name": v.name, "Source": v.source,
                    "Destination": v.destination, "Driver": v.driver, "Mode": v.mode,
                    "RW": v.rw, "Propagation": v.propagation})
    return out


def _config(c: Container, network_ids: dict[str, str]) -> dict[str, Any]:
    """Config, with the main network's requested MAC as the deprecated container-wide
    MacAddress when it has none (moby does this at every API version)."""
    mode = c.host_config.get("NetworkMode", "bridge")
    if c.config.get("MacAddress") or mode in ("host", "none") \
            or mode.startswith("container:"):
        return c.config
    configs = (c.networking_config or {}).get("EndpointsConfig") or {}
    main = "bridge" if mode == "default" else mode    # a name, an id or a short id
    name = next((n for n in configs if n == main or network_ids.get(n, "").startswith(main)),
                None)
    mac = (configs.get(name) or {}).get("MacAddress") if name else None
    return {**c.config, "MacAddress": mac} if mac else c.config


def inspect(c: Container, network_ids: dict[str, str], graph: dict[str, Any],
            size: tuple[int, int] | None = None,
            links: list[str] | None = None, sandbox_key: str = "") -> dict[str, Any]:
    """`links`: HostConfig.Links in dockerd's form (`/child:/parent/alias`), or None;
    `sandbox_key`: the path pinning the container's network namespace, or ""."""
    st = c.state
    state: dict[str, Any] = {
        "Status": st.status, "Running": st.status in ("running", "paused"),
        "Paused": st.status == "paused", "Restarting": st.status == "restarting",
        "OOMKilled": st.oom_killed, "Dead": st.status == "dead", "Pid": st.pid,
        "ExitCode": st.exit_code, "Error": st.error, "StartedAt": st.started_at,
        "FinishedAt": st.finished_at,
    }
    if st.health is not None:
        state["Health"] = {"Status": st.health.status, "FailingStreak": st.health.failing_streak,
                           "Log": list(st.health.log)}
    ep = c.endpoints[0] if c.endpoints else None
    nets = networks_of(c, network_ids)
    doc: dict[str, Any] = {
        "Id": c.id, "Created": c.created, "Path": c.path, "Args": c.args, "State": state,
        "Image": c.image_id, "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path, "HostsPath": c.hosts_path, "LogPath": c.log_path,
        "Name": "/" + c.name, "RestartCount": c.restart_count, "Driver": c.driver,
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": list(c.exec_ids) or None,
        "HostConfig": {**c.host_config, "Links": links},
        "GraphDriver": graph, "Mounts": mounts_of(c), "Config": _config(c, network_ids),
        "NetworkSettings": {
            "Bridge": "", "SandboxID": c.id if st.running and nets else "",
            "SandboxKey": sandbox_key if st.running and nets else "",
            "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": inspect_ports(c),
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": ep.endpoint_id if ep else "",
            "Gateway": ep.gateway if ep else "",
            "GlobalIPv6Address": ep.ip6 if ep else "",
            "GlobalIPv6PrefixLen": ep.prefix_len6 if ep else 0,
            "IPAddress": ep.ip if ep else "",
            "IPPrefixLen": ep.prefix_len if ep else 0,
            "IPv6Gateway": ep.gateway6 if ep else "",
            "MacAddress": ep.mac if ep else "", "Networks": nets,
        },
    }
    if size is not None:
        doc["SizeRw"], doc["SizeRootFs"] = size
    return doc


def summary(c: Container, network_ids: dict[str, str],
            size: tuple[int, int] | None = None,
            link_names: list[str] | None = None) -> dict[str, Any]:
    """`link_names`: the `/parent/alias` names of links to the container (sorted in
    with its own name, as dockerd lists them)."""
    d: dict[str, Any] = {
        "Id": c.id, "Names": sorted(["/" + c.name, *(link_names or [])]), "Image": c.image, "ImageID": c.image_id,
        "Command": _command(c), "Created": int(to_unix(c.created)), "Ports": summary_ports(c),
        "Labels": c.labels, "State": c.state.status, "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode", "bridge")},
        "NetworkSettings": {"Networks": networks_of(c, network_ids)},
        "Mounts": mounts_of(c),
    }
    if size is not None:
        d["SizeRw"], d["SizeRootFs"] = size
    return d
