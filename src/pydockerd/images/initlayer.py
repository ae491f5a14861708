"""dockerd's init layer (moby daemon/initlayer): the mount points the runtime and
the daemon put into every container, prepared once per container as a read-only
layer between the image and the container's rw layer.

With them present below the rw layer, runc finds its mount targets (/proc, /sys,
/dev/pts, /dev/shm, the /etc files it bind-mounts) and creates nothing in the
upper dir, so `docker diff` and `docker commit` show only what the container
itself changed, as with dockerd's `<id>-init` layer.
"""
from __future__ import annotations

import os

# path -> "dir", "file" or a symlink target (moby's initlayer.Setup table)
ENTRIES: dict[str, str] = {
    "/dev/pts": "dir",
    "/dev/shm": "dir",
    "/proc": "dir",
    "/sys": "dir",
    "/.dockerenv": "file",
    "/etc/resolv.conf": "file",
    "/etc/hosts": "file",
    "/etc/hostname": "file",
    "/dev/console": "file",
    "/etc/mtab": "/proc/mounts",
}


def make_init_layer(root: str, owner: tuple[int, int] | None = None) -> None:
    """Fill `root` (a new, empty directory of ours) with the init layer's entries,
    owned by `owner` (the remapped root with --userns-remap; else root)."""
    made: list[str] = [root]
    for path, kind in ENTRIES.items():
        host = os.path.join(root, path.lstrip("/"))
        parent = os.path.dirname(host)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755, exist_ok=True)
            made.append(parent)
        if os.path.lexists(host):
            continue
        if kind == "dir":
            os.makedirs(host, 0o755, exist_ok=True)
        elif kind == "file":
            os.close(os.open(host, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o755))
        else:
            os.symlink(kind, host)
        made.append(host)
    if owner is not None:
        for p in made:
            os.lchown(p, *owner)


__all__ = ["ENTRIES", "make_init_layer"]
