"""Docker's mount syntax, as the CLI sends it in HostConfig: `-v src:dst[:mode]`
(Binds) and `--tmpfs /dst[:opts]` (Tmpfs), parsed into the runtime's MountSpec.

Used at create time (containers/create.py validates and plans volumes) and at
start (containers/spec.py builds the spec's mounts).
"""
from __future__ import annotations

import posixpath
import re

from ..errors import InvalidParameter
from ..runtime.spec_input import MountSpec

_VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_RW_MODES = {"rw", "ro"}
_LABEL_MODES = {"z", "Z"}
PROPAGATION_MODES = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
_PROPAGATION_MODES = set(PROPAGATION_MODES)
_COPY_MODES = {"nocopy"}
_CONSISTENCY_MODES = {"consistent", "cached", "delegated"}


def _valid_bind_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0, "consistency": 0}
    for o in mode.split(","):
        if o in _RW_MODES:
            counts["rw"] += 1
        elif o in _LABEL_MODES:
            counts["label"] += 1
        elif o in _PROPAGATION_MODES:
            counts["prop"] += 1
        elif o in _COPY_MODES:
            counts["copy"] += 1
        elif o in _CONSISTENCY_MODES:
            counts["consistency"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def parse_bind(spec: str) -> MountSpec:
    """Docker's `-v src:dst[:mode]` (HostConfig.Binds) → a MountSpec.

    An absolute source is a bind mount (options rbind, ro when asked, and the
    propagation mode); a volume name gives type "volume" with the name as
    source; a lone "/dst" is an anonymous volume (type "volume", source "").
    Relative host paths are rejected.
    """
    invalid = f"invalid volume specification: '{spec}'"
    parts = spec.split(":", 3)
    if parts[0] == "":
        raise InvalidParameter(invalid)
    mode = ""
    if len(parts) == 1:
        source, dest = "", parts[0]
    elif len(parts) == 2:
        if _valid_bind_mode(parts[1]):
            raise InvalidParameter(invalid)
        source, dest = parts
    elif len(parts) == 3:
        source, dest, mode = parts
    else:
        raise InvalidParameter(invalid)
    if not _valid_bind_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    if not dest.startswith("/"):
        raise InvalidParameter(
            f"{invalid}: invalid mount path: '{dest}' mount path must be absolute"
        )
    dest = posixpath.normpath(dest)
    if dest == "/" or dest == "//":
        raise InvalidParameter(f"{invalid}: invalid specification: destination can't be '/'")
    opts = mode.split(",") if mode else []
    readonly = "ro" in opts
    propagation = next((o for o in opts if o in _PROPAGATION_MODES), "")
    if source.startswith("/"):
        options = ["rbind"]
        if readonly:
            options.append("ro")
        options.append(propagation or "rprivate")
        return MountSpec(destination=dest, source=posixpath.normpath(source), type="bind",
                         options=options)
    if propagation:
        raise InvalidParameter(f'{invalid}: invalid mount config for type "volume": '
                               "field BindOptions must not be specified")
    if source and not _VOLUME_NAME_RE.match(source):
        raise InvalidParameter(
            f'create {source}: "{source}" includes invalid characters for a local volume '
            'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
            "a host directory, use absolute path"
        )
    options = ["ro"] if readonly else []
    options += [o for o in opts if o == "nocopy"]
    return MountSpec(destination=dest, source=source, type="volume", options=options)


_TMPFS_FLAG_PAIRS = {
    "exec": "noexec", "suid": "nosuid", "dev": "nodev", "atime": "noatime",
    "diratime": "nodiratime", "relatime": "norelatime", "strictatime": "nostrictatime",
    "ro": "rw",
}
_TMPFS_FLAG_KEY = {**{k: k for k in _TMPFS_FLAG_PAIRS}, **{v: k for k, v in _TMPFS_FLAG_PAIRS.items()}}
_TMPFS_DATA_KEYS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol",
                    "huge", "tmpcopyup", "notmpcopyup"}
_TMPFS_OTHER = {"sync", "async", "dirsync", "mand", "nomand", "remount", "bind", "rbind",
                "private", "rprivate", "shared", "rshared", "slave", "rslave",
                "tmpcopyup", "notmpcopyup"}


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """moby's MergeTmpfsOptions: later options win over earlier ones of the same kind."""
    seen: set[str] = set()
    out: list[str] = []
    for opt in reversed(options):
        if not opt:
            continue
        key = opt.split("=", 1)[0]
        if key in _TMPFS_FLAG_KEY:
            key = "flag:" + _TMPFS_FLAG_KEY[key]
        elif "=" in opt:
            if key not in _TMPFS_DATA_KEYS:
                raise InvalidParameter(f"invalid tmpfs option [{key}]")
        elif opt not in _TMPFS_OTHER:
            raise InvalidParameter(f'invalid tmpfs option ["{opt}"]')
        if key in seen:
            continue
        seen.add(key)
        out.insert(0, opt)
    return out


def bind_propagation(m: MountSpec) -> str:
    """The propagation mode of a bind MountSpec (rprivate unless asked)."""
    return next((o for o in m.options if o in _PROPAGATION_MODES), "rprivate")


def parse_tmpfs(dest: str, opts: str | list[str] = "") -> MountSpec:
    """Docker's --tmpfs /dst[:opts] (HostConfig.Tmpfs entry) → a tmpfs MountSpec."""
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
    extra = [o for o in (opts.split(",") if isinstance(opts, str) else opts) if o]
    merged = merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", *extra])
    return MountSpec(destination=posixpath.normpath(dest), source="tmpfs", type="tmpfs",
                     options=merged)
