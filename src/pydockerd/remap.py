"""`--userns-remap`: the remapping user, its subordinate ranges and the remapped root.

As dockerd (daemon/daemon_unix.go setupRemappedRoot, pkg/idtools): the value is
`default` (the `dockremap` user, created with `useradd -r -s /bin/false` when
missing, with ranges of 65536 ids added by `usermod -v/-w` when it has none) or
`<user>[:<group>]` (names or numeric ids; the group defaults to the user's name).
The ranges of /etc/subuid (user) and /etc/subgid (group) make the IdMap; the
daemon then keeps everything under `<data-root>/<uid>.<gid>/`, the host ids of
the containers' root. Blocking: called once at daemon start.
"""
from __future__ import annotations

import grp
import logging
import os
import pwd
import stat

from .errors import InvalidParameter
from .util.cmd import run_sync
from .util.idmap import IdMap, ranges_from_subids

log = logging.getLogger("pydockerd")

DEFAULT_USER = "dockremap"
RANGE_START = 100000        # moby idtools defaultRangeStart
RANGE_LEN = 65536


def parse_subid_file(path: str, name: str | None) -> list[tuple[int, int]]:
    """The (start, length) ranges of `name` (None: of everyone) in a subuid file."""
    out: list[tuple[int, int]] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise InvalidParameter(f"Cannot parse subuid/gid information: Format not correct "
                                   f"for {path} file")
        if name is None or parts[0] == name:
            try:
                out.append((int(parts[1]), int(parts[2])))
            except ValueError:
                raise InvalidParameter(f"Cannot parse subuid/gid information: {line!r}") \
                    from None
    return out


def next_range_start(ranges: list[tuple[int, int]]) -> int:
    """moby's findNextRangeStart: the first start from 100000 not overlapping a range."""
    start = RANGE_START
    for r_start, r_len in sorted(ranges):
        low, high = start, start + RANGE_LEN
        if r_start <= low <= r_start + r_len or r_start <= high <= r_start + r_len:
            start = r_start + r_len
    return start


def parse_remap(value: str) -> tuple[str, str]:
    """`user[:group]` -> (user, group); `default` -> dockremap:dockremap."""
    if value == "default":
        return DEFAULT_USER, DEFAULT_USER
    user, _, group = value.partition(":")
    if not user:
        raise InvalidParameter(f"Invalid userns remap configuration: {value!r}")
    return user, group or user


def _user_name(user: str) -> str:
    try:
        return pwd.getpwuid(int(user)).pw_name if user.isdigit() else pwd.getpwnam(user).pw_name
    except KeyError:
        raise InvalidParameter(f"Error during uid lookup for \"{user}\": user: unknown user "
                               f"{user}") from None


def _group_name(group: str) -> str:
    try:
        return grp.getgrgid(int(group)).gr_name if group.isdigit() else grp.getgrnam(group).gr_name
    except KeyError:
        raise InvalidParameter(f"Error during gid lookup for \"{group}\": group: unknown group "
                               f"{group}") from None


def ensure_default_user(etc: str = "/etc") -> None:
    """dockerd's AddNamespaceRangesUser for `default`: the user, then its ranges."""
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        log.info("userns-remap: creating user %s", DEFAULT_USER)
        run_sync(["useradd", "-r", "-s", "/bin/false", DEFAULT_USER])
    for path, flag in ((os.path.join(etc, "subuid"), "-v"), (os.path.join(etc, "subgid"), "-w")):
        if parse_subid_file(path, DEFAULT_USER):
            continue
        start = next_range_start(parse_subid_file(path, None))
        log.info("userns-remap: adding %s ranges %d-%d for %s", os.path.basename(path), start,
                 start + RANGE_LEN - 1, DEFAULT_USER)
        run_sync(["usermod", flag, f"{start}-{start + RANGE_LEN - 1}", DEFAULT_USER])


def load_idmap(value: str, etc: str = "/etc") -> IdMap:
    """The IdMap `--userns-remap=value` asks for (creating dockremap for `default`)."""
    user, group = parse_remap(value)
    if value == "default":
        ensure_default_user(etc)
    uname, gname = _user_name(user), _group_name(group)
    subuids = parse_subid_file(os.path.join(etc, "subuid"), uname)
    if not subuids:
        raise InvalidParameter(f"Can't create ID mappings: No subuid ranges found for user "
                               f"\"{uname}\"")
    subgids = parse_subid_file(os.path.join(etc, "subgid"), gname)
    if not subgids:
        raise InvalidParameter(f"Can't create ID mappings: No subgid ranges found for group "
                               f"\"{gname}\"")
    return IdMap(ranges_from_subids(subuids), ranges_from_subids(subgids))


def _can_traverse(path: str, uid: int, gid: int) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def remapped_root(data_root: str, ids: IdMap) -> str:
    """Make `<data-root>/<uid>.<gid>` (root:<gid> 0710, as dockerd) and check that
    the remapped root can reach it; returns the path."""
    uid, gid = ids.root()
    os.makedirs(data_root, mode=0o710, exist_ok=True)
    root = os.path.join(data_root, f"{uid}.{gid}")
    for d in (data_root, root):
        os.makedirs(d, mode=0o710, exist_ok=True)
        st = os.stat(d)
        if st.st_gid != gid or not st.st_mode & stat.S_IXGRP:
            os.chown(d, 0, gid)
            os.chmod(d, (st.st_mode & 0o7777) | stat.S_IXGRP)
    parent = os.path.dirname(os.path.abspath(data_root))
    while parent != "/":
        if not _can_traverse(parent, uid, gid):
            raise InvalidParameter(
                f"a subdirectory in your graphroot path ({root}) restricts access to the "
                "remapped root uid/gid; please fix by allowing 'o+x' permissions on existing "
                "directories")
        parent = os.path.dirname(parent)
    for name, mode in (("containers", 0o710), ("volumes", 0o701)):
        d = os.path.join(root, name)
        os.makedirs(d, mode=mode, exist_ok=True)
        os.chown(d, 0, gid if mode & stat.S_IXGRP else 0)
        os.chmod(d, mode)
    return root
