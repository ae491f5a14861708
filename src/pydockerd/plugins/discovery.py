"""Where legacy plugins are found, as dockerd's pkg/plugins/discovery.go: a unix socket
`<socket dir>/<name>.sock` or `<socket dir>/<name>/<name>.sock`, else a spec file
`<spec dir>/<name>.spec|.json` or `<spec dir>/<name>/<name>.spec|.json` (sockets win;
spec dirs in order, `.spec` before `.json`).

A `.spec` file holds one address (`unix:///path`, `tcp://host:port`, `http(s)://...`);
a `.json` file is `{"Name", "Addr", "TLSConfig": {"CAFile", "CertFile", "KeyFile",
"InsecureSkipVerify"}}` (no CAFile means InsecureSkipVerify, as dockerd). TLS is used
for `https://` addresses only, as dockerd's transport.

dockerd has no flag for these directories; pydockerd reads two environment variables
(for tests and unusual hosts): PYDOCKERD_PLUGIN_SOCKET_DIR and PYDOCKERD_PLUGIN_SPEC_DIRS
(colon-separated).
"""
from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import SystemError_

DEFAULT_SOCKET_DIR = "/run/docker/plugins"
DEFAULT_SPEC_DIRS = ("/etc/docker/plugins", "/usr/lib/docker/plugins")
ENV_SOCKET_DIR = "PYDOCKERD_PLUGIN_SOCKET_DIR"
ENV_SPEC_DIRS = "PYDOCKERD_PLUGIN_SPEC_DIRS"
_SCHEMES = ("unix", "tcp", "http", "https")


@dataclass(frozen=True)
class TLSOptions:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class PluginSpec:
    name: str
    addr: str                      # unix:///path, tcp://host:port, http(s)://host:port
    tls: TLSOptions | None = None


@dataclass(frozen=True)
class PluginDirs:
    socket_dir: str = DEFAULT_SOCKET_DIR
    spec_dirs: tuple[str, ...] = DEFAULT_SPEC_DIRS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "PluginDirs":
        specs = env.get(ENV_SPEC_DIRS)
        return cls(env.get(ENV_SOCKET_DIR) or DEFAULT_SOCKET_DIR,
                   tuple(p for p in specs.split(":") if p) if specs else DEFAULT_SPEC_DIRS)


def _candidates(base: str, name: str, ext: str) -> list[str]:
    return [os.path.join(base, name + ext), os.path.join(base, name, name + ext)]


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def possible_name(name: str) -> bool:
    """Whether `name` could name a socket or spec file at all."""
    return bool(name) and "/" not in name and "\0" not in name and \
        name not in (".", "..") and len(name.encode()) <= 250


def find(dirs: PluginDirs, name: str) -> PluginSpec | None:
    """The plugin called `name`, or None when nothing is there (dockerd's ErrNotFound).
    A spec file that cannot be read or names no protocol is a SystemError_."""
    if not possible_name(name):
        return None
    for p in _candidates(dirs.socket_dir, name, ".sock"):
        if _is_socket(p):
            return PluginSpec(name, "unix://" + p)
    for base in dirs.spec_dirs:
        for p in _candidates(base, name, ".spec") + _candidates(base, name, ".json"):
            if os.path.isfile(p):
                return read_json_spec(name, p) if p.endswith(".json") \
                    else read_spec(name, p)
    return None


def _check_addr(addr: str, path: str) -> str:
    scheme = urlsplit(addr).scheme
    if not scheme:
        raise SystemError_(f"Unknown protocol (plugin spec {path})")
    if scheme not in _SCHEMES:
        raise SystemError_(f"protocol not available: {scheme} (plugin spec {path})")
    return addr


def read_spec(name: str, path: str) -> PluginSpec:
    try:
        with open(path, encoding="utf-8") as f:
            addr = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SystemError_(f"reading plugin spec {path}: {e}") from None
    return PluginSpec(name, _check_addr(addr, path))


def read_json_spec(name: str, path: str) -> PluginSpec:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemError_(f"reading plugin spec {path}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Addr", ""), str):
        raise SystemError_(f"plugin spec {path}: not a plugin description")
    t = doc.get("TLSConfig") or {}
    if not isinstance(t, dict):
        raise SystemError_(f"plugin spec {path}: TLSConfig must be an object")
    ca = str(t.get("CAFile") or "")
    tls = TLSOptions(ca, str(t.get("CertFile") or ""), str(t.get("KeyFile") or ""),
                     bool(t.get("InsecureSkipVerify")) or not ca)
    return PluginSpec(name, _check_addr(str(doc.get("Addr") or ""), path), tls)


def scan(dirs: PluginDirs) -> list[str]:
    """Every plugin name present (dockerd's Scan): sockets `<name>.sock` in the socket
    dir or `<name>/<name>.sock` below it (not any socket deeper down: managed plugins
    keep theirs in `<id>/`), files in the spec dirs; each name once, in the order found."""
    names: list[str] = []
    try:
        entries = sorted(os.listdir(dirs.socket_dir))
    except OSError:
        entries = []
    for f in entries:
        path = os.path.join(dirs.socket_dir, f)
        if os.path.isdir(path):
            path = os.path.join(path, f + ".sock")
        if _is_socket(path):
            names.append(os.path.splitext(os.path.basename(path))[0])
    for base in dirs.spec_dirs:
        for root, _dirs, files in os.walk(base):
            for f in sorted(files):
                stem, ext = os.path.splitext(f)
                if ext in (".spec", ".json"):
                    names.append(stem)
    return list(dict.fromkeys(names))
