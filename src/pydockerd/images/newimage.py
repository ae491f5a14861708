"""Image configs for images made here: docker import and docker commit.

Pure functions: the caller has unpacked the new layer and knows its diff id.
The JSON follows moby's image.Image (compact, Go field order).
"""
from __future__ import annotations

import json
import platform as _platform
from typing import Any

import msgspec

from ..errors import InvalidParameter
from ..models import ContainerConfig
from ..util.ids import now_rfc3339
from .model import Image

EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
DOCKER_VERSION = "28.0.0"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def parse_platform(value: str | None) -> dict[str, str]:
    """"os[/arch[/variant]]" -> {"os", "architecture"[, "variant"]}; host's by default."""
    host = {"os": "linux", "architecture": _ARCH.get(_platform.machine(), _platform.machine())}
    if not value:
        return host
    parts = value.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(f"\"{value}\": unknown operating system or architecture: "
                               "invalid argument")
    if parts[0] != "linux":
        raise InvalidParameter(f"operating system is not supported: {parts[0]}")
    out = {"os": "linux", "architecture": parts[1] if len(parts) > 1 else host["architecture"]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def import_config(diff_id: str, config: dict[str, Any], message: str,
                  plat: dict[str, str]) -> bytes:
    created = now_rfc3339()
    doc: dict[str, Any] = {}
    if message:
        doc["comment"] = message
    doc.update({"created": created, "docker_version": DOCKER_VERSION, "config": config,
                "architecture": plat["architecture"]})
    if plat.get("variant"):
        doc["variant"] = plat["variant"]
    doc["os"] = plat["os"]
    doc["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    history: dict[str, Any] = {"created": created}
    if message:
        history["comment"] = message
    doc["history"] = [history]
    return _dump(doc)


def commit_config(parent: Image, config: dict[str, Any], container_id: str,
                  container_config: dict[str, Any], diff_id: str, author: str,
                  comment: str) -> bytes:
    """The child of `parent` with one more layer (none if diff_id is the empty layer)."""
    created = now_rfc3339()
    empty = diff_id == EMPTY_LAYER
    history: dict[str, Any] = {"created": created}
    if author:
        history["author"] = author
    history["created_by"] = " ".join(container_config.get("Cmd") or [])
    if comment:
        history["comment"] = comment
    if empty:
        history["empty_layer"] = True
    p = parent.config
    doc: dict[str, Any] = {}
    if comment:
        doc["comment"] = comment
    doc.update({"created": created, "container": container_id,
                "container_config": container_config, "docker_version": DOCKER_VERSION})
    if author:
        doc["author"] = author
    doc.update({"config": config, "architecture": p.get("architecture") or
                parse_platform(None)["architecture"]})
    if p.get("variant"):
        doc["variant"] = p["variant"]
    doc["os"] = p.get("os") or "linux"
    diff_ids = list(parent.diff_ids) + ([] if empty else [diff_id])
    doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    doc["history"] = list(p.get("history") or []) + [history]
    for key in ("os.version", "os.features"):
        if p.get(key):
            doc[key] = p[key]
    return _dump(doc)


_MERGED = ("Env", "ExposedPorts", "Volumes", "Labels")
_REPLACED = tuple(f for f in ContainerConfig.__struct_fields__ if f not in _MERGED)


def merge_config(user: ContainerConfig | None, container: dict[str, Any]) -> dict[str, Any]:
    """moby's merge(): the commit request's Config fills in over the container's
    (Env by variable name, ports, volumes and labels by key; any other field the
    request sets replaces the container's)."""
    out = dict(container)
    if user is None:
        return out
    if user.Env:
        names = {e.split("=", 1)[0] for e in user.Env}
        out["Env"] = [e for e in out.get("Env") or [] if e.split("=", 1)[0] not in names] \
            + list(user.Env)
    for key, keys in (("ExposedPorts", user.ExposedPorts), ("Volumes", user.Volumes)):
        if keys:
            out[key] = {**(out.get(key) or {}), **{k: {} for k in keys}}
    if user.Labels:
        out["Labels"] = {**(out.get("Labels") or {}), **user.Labels}
    for key in _REPLACED:
        value = getattr(user, key)
        if value:                  # Go's zero values leave the container's value
            out[key] = msgspec.to_builtins(value)
    return out
