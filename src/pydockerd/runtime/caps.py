"""Linux capabilities: Docker's defaults, names, and the --cap-add/--cap-drop rules.

Facts from moby (daemon/pkg/oci/caps) and containerd (pkg/cap): the list of
known capabilities is indexed by bit number, and the capabilities a container
may receive are those the daemon itself still has (its bounding set). On hosts
where the daemon runs with a reduced bounding set (this one lacks
CAP_SYS_RESOURCE), asking for a missing capability is a clear 400, not a runc
failure at start.
"""
from __future__ import annotations

from collections.abc import Iterable

from pydockerd.errors import InvalidParameter

ALL = "ALL"

# Index = capability bit number (linux/capability.h).
KNOWN_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",  # 0
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",  # 5
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",  # 10
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",  # 15
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",  # 20
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",  # 25
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",  # 30
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",  # 35
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",  # 40
)

# Docker's default set for unprivileged containers (bit mask 0x00000000a80425fb).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def caps_from_mask(mask: int) -> list[str]:
    """Names of the known capabilities whose bits are set in `mask`, in bit order."""
    return [name for bit, name in enumerate(KNOWN_CAPABILITIES) if mask >> bit & 1]


def caps_to_mask(caps: Iterable[str]) -> int:
    mask = 0
    for name in caps:
        mask |= 1 << KNOWN_CAPABILITIES.index(name)
    return mask


def host_capabilities(status_path: str = "/proc/self/status") -> list[str]:
    """Capabilities in this process's bounding set: all a container can be given.

    Falls back to every known capability when the file cannot be read (then
    runc or the kernel has the last word, as in moby).
    """
    try:
        with open(status_path, encoding="ascii") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return caps_from_mask(int(line.split()[1], 16))
    except (OSError, ValueError, IndexError):
        pass
    return list(KNOWN_CAPABILITIES)


def normalize_caps(caps: Iterable[str], available: Iterable[str] | None = None) -> list[str]:
    """Upper-case, add the CAP_ prefix, keep "ALL"; reject unknown or unavailable names."""
    avail = set(available) if available is not None else set(KNOWN_CAPABILITIES)
    out: list[str] = []
    for raw in caps:
        name = raw.strip().upper()
        if name == ALL:
            out.append(ALL)
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in KNOWN_CAPABILITIES:
            raise InvalidParameter(f'unknown capability: "{name}"')
        if name not in avail:
            raise InvalidParameter(
                "capability not supported by your kernel or not available "
                f'in the current environment: "{name}"'
            )
        out.append(name)
    return out


def tweak_caps(
    defaults: Iterable[str],
    add: Iterable[str],
    drop: Iterable[str],
    privileged: bool = False,
    available: Iterable[str] | None = None,
) -> list[str]:
    """The container's capability list after --privileged, --cap-add and --cap-drop.

    Docker's semantics: privileged → every available capability; "ALL" in add →
    every available capability except those dropped; "ALL" in drop → only the
    added ones; otherwise defaults minus drops plus adds. `available` defaults
    to the host's bounding set. Order is kept stable and duplicates removed.
    """
    avail = list(available) if available is not None else host_capabilities()
    if privileged:
        return list(avail)
    add_list, drop_list = list(add), list(drop)
    base = [c for c in defaults if c in KNOWN_CAPABILITIES]
    if not add_list and not drop_list:
        return _unique(base)
    cap_drop = normalize_caps(drop_list, avail)
    cap_add = normalize_caps(add_list, avail)
    if ALL in cap_add:
        result = [c for c in avail if c not in cap_drop]
    elif ALL in cap_drop:
        result = cap_add
    else:
        result = [c for c in base if c not in cap_drop] + cap_add
    return _unique(result)


def _unique(caps: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for c in caps:
        if c != ALL and c not in seen:
            seen.add(c)
            out.append(c)
    return out
