"""A managed plugin's config (dockerd's types.PluginConfig, the image config of media
type application/vnd.docker.plugin.v1+json), its privileges, its settings and
`docker plugin set` (moby's plugin/v2 settable.go).

The config is kept as the JSON object dockerd shows in `docker plugin inspect`
(every field present, Go's zero values where the plugin's config.json is silent),
checked field by field: a value of the wrong JSON type is a 400 naming the field.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidParameter

MEDIA_TYPE = "application/vnd.docker.plugin.v1+json"
# Interface.Types capability -> the legacy registry's kind (what Plugin.Activate lists)
KINDS = {"volumedriver": "VolumeDriver", "networkdriver": "NetworkDriver",
         "ipamdriver": "IpamDriver", "authz": "authz", "logdriver": "LogDriver",
         "metricscollector": "MetricsCollector"}
_TYPE_RE = re.compile(r"^([a-z0-9]+)\.([a-z0-9]+)/([0-9.]+)$")
_NAME_OPT = ("Name", "Description")


def _bad(field_name: str, want: str) -> InvalidParameter:
    return InvalidParameter(f"failed to parse config: json: cannot unmarshal {field_name} "
                            f"into Go value of type {want}")


def _str(doc: dict[str, Any], key: str, where: str) -> str:
    v = doc.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _bad(f"{where}{key}", "string")
    return v


def _bool(doc: dict[str, Any], key: str, where: str) -> bool:
    v = doc.get(key)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(f"{where}{key}", "bool")
    return v


def _strs(doc: dict[str, Any], key: str, where: str) -> list[str] | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _bad(f"{where}{key}", "[]string")
    return list(v)


def _obj(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    v = doc.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _bad(f"{where}{key}", "object")
    return v


def _objs(doc: dict[str, Any], key: str, where: str) -> list[dict[str, Any]] | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(o, dict) for o in v):
        raise _bad(f"{where}{key}", "[]object")
    return v


def _sorted(d: dict[str, Any]) -> dict[str, Any]:
    """Go's field order in `docker plugin inspect` (alphabetical for these types)."""
    return dict(sorted(d.items()))


def _described(o: dict[str, Any], where: str) -> dict[str, Any]:
    return {"Name": _str(o, "Name", where), "Description": _str(o, "Description", where),
            "Settable": _strs(o, "Settable", where)}


def _mount(o: dict[str, Any]) -> dict[str, Any]:
    w = "Mounts."
    src = o.get("Source")
    if src is not None and not isinstance(src, str):
        raise _bad(w + "Source", "string")
    return _sorted({**_described(o, w), "Source": src,
                    "Destination": _str(o, "Destination", w), "Type": _str(o, "Type", w),
                    "Options": _strs(o, "Options", w)})


def _device(o: dict[str, Any]) -> dict[str, Any]:
    w = "Linux.Devices."
    path = o.get("Path")
    if path is not None and not isinstance(path, str):
        raise _bad(w + "Path", "string")
    return _sorted({**_described(o, w), "Path": path})


def _env(o: dict[str, Any]) -> dict[str, Any]:
    w = "Env."
    val = o.get("Value")
    if val is not None and not isinstance(val, str):
        raise _bad(w + "Value", "string")
    return _sorted({**_described(o, w), "Value": val})


def parse_config(raw: bytes) -> dict[str, Any]:
    """The normalised config of a plugin (dockerd's inspect shape); InvalidParameter
    when it is not a plugin config pydockerd can run."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidParameter(f"failed to parse config: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("failed to parse config: json: cannot unmarshal "
                               "into Go value of type types.PluginConfig")
    iface = _obj(doc, "Interface", "")
    types = _strs(iface, "Types", "Interface.") or []
    for t in types:
        if not _TYPE_RE.match(t):
            raise InvalidParameter(f"failed to parse config: {t!r} is not a plugin "
                                   "interface type (<prefix>.<capability>/<version>)")
    socket = _str(iface, "Socket", "Interface.")
    if not socket or "/" in socket or socket in (".", ".."):
        raise InvalidParameter("invalid plugin config: Interface.Socket must name the "
                               "plugin's socket file (e.g. plugin.sock)")
    if not types:
        raise InvalidParameter("invalid plugin config: Interface.Types is empty")
    entry = _strs(doc, "Entrypoint", "")
    if not entry:
        raise InvalidParameter("invalid plugin config: Entrypoint is empty")
    linux = _obj(doc, "Linux", "")
    net = _obj(doc, "Network", "")
    ntype = _str(net, "Type", "Network.")
    if ntype not in ("", "host", "none", "null", "bridge"):
        raise InvalidParameter(f"invalid plugin config: network type {ntype!r} is not "
                               "supported (host, none, bridge)")
    user = _obj(doc, "User", "")
    for k in ("UID", "GID"):
        if k in user and not isinstance(user[k], int):
            raise _bad(f"User.{k}", "uint32")
    args = _obj(doc, "Args", "")
    prop = _str(doc, "PropagatedMount", "")
    if prop and not prop.startswith("/"):
        raise InvalidParameter("invalid plugin config: PropagatedMount must be an "
                               "absolute path")
    rootfs = doc.get("rootfs")
    out: dict[str, Any] = {
        "Args": _sorted({**_described(args, "Args."),
                         "Value": _strs(args, "Value", "Args.")}),
        "Description": _str(doc, "Description", ""),
        "DockerVersion": _str(doc, "DockerVersion", ""),
        "Documentation": _str(doc, "Documentation", ""),
        "Entrypoint": entry,
        "Env": [_env(o) for o in _objs(doc, "Env", "") or []] or None,
        "Interface": {"Socket": socket, "Types": types,
                      **({"ProtocolScheme": _str(iface, "ProtocolScheme", "Interface.")}
                         if iface.get("ProtocolScheme") else {})},
        "IpcHost": _bool(doc, "IpcHost", ""),
        "Linux": {"AllowAllDevices": _bool(linux, "AllowAllDevices", "Linux."),
                  "Capabilities": _strs(linux, "Capabilities", "Linux."),
                  "Devices": [_device(o) for o in _objs(linux, "Devices", "Linux.") or []]
                  or None},
        "Mounts": [_mount(o) for o in _objs(doc, "Mounts", "") or []] or None,
        "Network": {"Type": ntype},
        "PidHost": _bool(doc, "PidHost", ""),
        "PropagatedMount": prop,
        "User": {k: user[k] for k in ("UID", "GID") if user.get(k)},
        "WorkDir": _str(doc, "WorkDir", ""),
    }
    if isinstance(rootfs, dict):
        out["rootfs"] = {"type": str(rootfs.get("type") or "layers"),
                         "diff_ids": _strs(rootfs, "diff_ids", "rootfs.") or []}
    return out


def kinds(config: dict[str, Any]) -> tuple[str, ...]:
    """What the plugin implements, as the legacy registry names it."""
    out = []
    for t in config["Interface"]["Types"]:
        m = _TYPE_RE.match(t)
        if m and m.group(1) == "docker":
            out.append(KINDS.get(m.group(2), m.group(2)))
    return tuple(out)


def capabilities(config: dict[str, Any]) -> list[str]:
    """Interface.Types' capabilities (the `capability` filter of GET /plugins)."""
    return [m.group(2) for t in config["Interface"]["Types"] if (m := _TYPE_RE.match(t))]


def privileges(c: dict[str, Any]) -> list[dict[str, Any]]:
    """moby's computePrivileges, in its order."""
    out: list[dict[str, Any]] = []

    def add(name: str, desc: str, value: list[str]) -> None:
        out.append({"Name": name, "Description": desc, "Value": value})
    if c["Network"]["Type"] not in ("", "null", "bridge"):
        add("network", "permissions to access a network", [c["Network"]["Type"]])
    if c["IpcHost"]:
        add("host ipc namespace", "allow access to host ipc namespace", ["true"])
    if c["PidHost"]:
        add("host pid namespace", "allow access to host pid namespace", ["true"])
    for m in c["Mounts"] or []:
        if m["Source"] is not None:
            add("mount", "host path to mount", [m["Source"]])
    for d in c["Linux"]["Devices"] or []:
        if d["Path"] is not None:
            add("device", "host device to access", [d["Path"]])
    if c["Linux"]["AllowAllDevices"]:
        add("allow-all-devices", "allow 'rwm' access to all devices", ["true"])
    if c["Linux"]["Capabilities"]:
        add("capabilities", "list of additional capabilities required",
            list(c["Linux"]["Capabilities"]))
    return out


def same_privileges(required: list[dict[str, Any]], granted: list[dict[str, Any]]) -> bool:
    """moby's validatePrivileges: the same names with the same values, in any order."""
    def key(p: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        return str(p.get("Name") or ""), tuple(sorted(str(v) for v in p.get("Value") or []))
    return sorted(map(key, required)) == sorted(map(key, granted))


def initial_settings(c: dict[str, Any]) -> dict[str, Any]:
    """moby's InitEmptySettings: the config's mounts, devices, env values and args."""
    return {"Mounts": copy.deepcopy(c["Mounts"] or []),
            "Env": [f"{e['Name']}={e['Value']}" for e in c["Env"] or []
                    if e["Value"] is not None],
            "Args": list(c["Args"]["Value"] or []),
            "Devices": copy.deepcopy(c["Linux"]["Devices"] or [])}


@dataclass
class _Settable:
    name: str
    field: str = ""
    value: str = ""
    pretty: str = ""

    def check(self, allowed: str, settable: list[str] | None) -> bool:
        s = settable or []
        if not self.field:
            if len(s) > 1:
                raise InvalidParameter("multiple fields are settable, one must be "
                                       "specified")
            if len(s) == 1:
                self.field = s[0]
        return self.field == allowed and self.field in s


def _settable(arg: str) -> _Settable:
    i = arg.find("=")
    if i == 0:
        raise InvalidParameter("invalid format, must be <name>[.<field>][=<value>]")
    name, value = (arg, "") if i < 0 else (arg[:i], arg[i + 1:])
    s = _Settable(name, value=value, pretty=name)
    j = name.rfind(".")
    if j > 0:
        s.name, s.field = name[:j], name[j + 1:]
    return s


def apply_set(c: dict[str, Any], settings: dict[str, Any], args: list[str]
              ) -> dict[str, Any]:
    """`docker plugin set`: the new settings (moby's Plugin.Set); the input is left
    as it is."""
    out = copy.deepcopy(settings)
    unknown: list[str] = []
    for arg in args:
        s = _settable(arg)
        env = next((e for e in c["Env"] or [] if e["Name"] == s.name), None)
        mount = next((m for m in c["Mounts"] or [] if m["Name"] == s.name), None)
        dev = next((d for d in c["Linux"]["Devices"] or [] if d["Name"] == s.name), None)
        if env is not None:
            if not s.check("value", env["Settable"]):
                raise InvalidParameter(f'"{s.pretty}" is not settable')
            out["Env"] = [e for e in out["Env"] if e.split("=", 1)[0] != s.name]
            out["Env"].append(f"{s.name}={s.value}")
        elif mount is not None:
            if not s.check("source", mount["Settable"]):
                raise InvalidParameter(f'"{s.pretty}" is not settable')
            for m in out["Mounts"]:
                if m["Name"] == s.name:
                    m["Source"] = s.value
        elif dev is not None:
            if not s.check("path", dev["Settable"]):
                raise InvalidParameter(f'"{s.pretty}" is not settable')
            for d in out["Devices"]:
                if d["Name"] == s.name:
                    d["Path"] = s.value
        elif c["Args"]["Name"] and c["Args"]["Name"] == s.name:
            if not s.check("value", c["Args"]["Settable"]):
                raise InvalidParameter(f'"{s.pretty}" is not settable')
            out["Args"] = s.value.split(" ")
        else:
            unknown.append(s.name)
    if unknown:
        raise InvalidParameter(f'setting "{", ".join(unknown)}" not found in the plugin '
                               "configuration")
    return out
