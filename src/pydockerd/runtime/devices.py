"""Device nodes and the device cgroup: Docker's allowlist, --device, --privileged."""
from __future__ import annotations

import os
import stat
from typing import Any

from pydockerd.errors import InvalidParameter
from pydockerd.runtime.spec_input import DeviceSpec


def default_device_rules() -> list[dict[str, Any]]:
    """Deny all, then Docker's allowlist (runc adds its own defaults for pts, ptmx, tun...)."""
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)):
        rules.append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"})
    rules.append({"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    return rules


def device_from_path(path: str) -> dict[str, Any] | None:
    """An OCI linux.devices entry for a host device node, or None if it is not one."""
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISBLK(mode):
        kind = "b"
    elif stat.S_ISCHR(mode):
        kind = "c"
    else:
        return None
    return {
        "path": path,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def devices_from_spec(dev: DeviceSpec) -> list[dict[str, Any]]:
    """Device nodes for one --device (a node, or a directory of nodes)."""
    host = dev.path_on_host
    in_ctr = dev.path_in_container or host
    resolved = os.path.realpath(host) if os.path.islink(host) else host
    try:
        node = device_from_path(resolved)
    except OSError as e:
        raise InvalidParameter(
            f'error gathering device information while adding custom device "{host}": '
            f"{e.strerror or e}"
        ) from None
    if node is not None:
        node["path"] = in_ctr
        return [node]
    found: list[dict[str, Any]] = []
    if os.path.isdir(resolved):
        for dirpath, _dirs, files in os.walk(resolved):
            for name in sorted(files):
                full = os.path.join(dirpath, name)
                try:
                    child = device_from_path(full)
                except OSError:
                    continue
                if child is not None:
                    child["path"] = in_ctr + full[len(resolved):]
                    found.append(child)
    if not found:
        raise InvalidParameter(
            f'error gathering device information while adding custom device "{host}": '
            "not a device node"
        )
    return found


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """All device nodes of the host (what a privileged container gets), as containerd lists them."""
    out: list[dict[str, Any]] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name in ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"):
                continue
            out += host_devices(entry.path)
            continue
        if entry.name == "console":
            continue
        try:
            dev = device_from_path(entry.path)
        except OSError:
            continue
        if dev is not None:
            out.append(dev)
    return out


def device_permissions(access: str) -> str:
    if not access or any(c not in "rwm" for c in access):
        raise InvalidParameter(f"invalid device cgroup permissions: {access!r}")
    return access
