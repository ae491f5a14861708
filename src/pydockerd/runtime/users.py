"""Resolve Docker's `User` and `GroupAdd` against a container's /etc/passwd and /etc/group.

Never NSS: the files are parsed as text (DESIGN.md §5), and their paths are
resolved as the container would see them — symlinks are chased *inside* the
rootfs, never on the host. The rules follow moby/sys/user GetExecUser:
"name|uid[:group|gid]", first match wins, numeric ids need no entry, the
implicit form picks up supplementary groups where the user is listed.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from pydockerd.errors import InvalidParameter

MAX_ID = 2**31 - 1
_MAX_SYMLINKS = 255


@dataclass(frozen=True)
class ExecUser:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def resolve_in_root(root: str, path: str) -> str:
    """Host path of `path` as seen from inside `root`, symlinks chased within root.

    Like securejoin: ".." never climbs above root, absolute link targets are
    relative to root. The result may not exist.
    """
    root = os.path.abspath(root)
    pending = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p] + pending
    return os.path.join(root, *resolved)


def _read_root_file(rootfs: str, path: str) -> list[str] | None:
    """Lines of a regular file inside the rootfs, or None when it is absent/unreadable."""
    try:
        host_path = resolve_in_root(rootfs, path)
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(16 * 1024 * 1024)
    finally:
        if fd >= 0:
            os.close(fd)
    return data.decode("utf-8", "replace").splitlines()


@dataclass(frozen=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _to_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        return 0


def _fields(line: str, n: int) -> list[str]:
    parts = line.split(":")
    return parts + [""] * (n - len(parts))


def parse_passwd(lines: list[str]) -> list[_Passwd]:
    out = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        name, _pw, uid, gid, _gecos, home, _shell = _fields(line, 7)[:7]
        out.append(_Passwd(name, _to_int(uid), _to_int(gid), home))
    return out


def parse_group(lines: list[str]) -> list[_Group]:
    out = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _pw, gid, members = _fields(line, 4)[:4]
        out.append(_Group(name, _to_int(gid), tuple(m for m in members.split(",") if m)))
    return out


def _parse_numeric(value: str) -> int | None:
    """The id if `value` is numeric (range-checked), else None."""
    if not value or not value.lstrip("+-").isdigit():
        return None
    n = int(value)
    if n < 0 or n > MAX_ID:
        raise InvalidParameter(f"uids and gids must be in range 0-{MAX_ID}")
    return n


def resolve_user(rootfs: str, user: str = "", group_add: list[str] | None = None) -> ExecUser:
    """uid, gid and additional gids for Docker's `User` string inside `rootfs`.

    additional_gids starts with the primary gid (as moby does), then the
    user's supplementary groups, then --group-add entries.
    """
    passwd_lines = _read_root_file(rootfs, "/etc/passwd")
    group_lines = _read_root_file(rootfs, "/etc/group")
    users = parse_passwd(passwd_lines) if passwd_lines is not None else None
    groups = parse_group(group_lines) if group_lines is not None else None

    user_arg, _, group_arg = user.partition(":")
    group_arg = group_arg.split(":", 1)[0]
    uid_num = _parse_numeric(user_arg)
    gid_num = _parse_numeric(group_arg)

    uid, gid, home = 0, 0, "/"
    matched_name = ""
    candidates = []
    if users is not None:
        for u in users:
            if user_arg == "":
                ok = u.uid == 0
            elif uid_num is not None:
                ok = u.uid == uid_num
            else:
                ok = u.name == user_arg
            if ok:
                candidates.append(u)
    if candidates:
        first = candidates[0]
        matched_name, uid, gid, home = first.name, first.uid, first.gid, first.home
    elif user_arg:
        if uid_num is None:
            raise InvalidParameter(
                f"unable to find user {user_arg}: no matching entries in passwd file"
            )
        uid = uid_num

    sgids: list[int] = []
    if group_arg or matched_name:
        matches = []
        for g in groups or []:
            if not group_arg:
                ok = matched_name in g.members
            elif gid_num is not None:
                ok = g.gid == gid_num
            else:
                ok = g.name == group_arg
            if ok:
                matches.append(g)
        if group_arg:
            if matches:
                gid = matches[0].gid
            elif gid_num is None:
                raise InvalidParameter(
                    f"unable to find group {group_arg}: no matching entries in group file"
                )
            else:
                gid = gid_num
        else:
            sgids = [g.gid for g in matches]

    extra = additional_groups(groups, group_add or [])
    additional: list[int] = []
    for gid_ in [gid, *sgids, *extra]:
        if gid_ not in additional:
            additional.append(gid_)
    return ExecUser(uid=uid, gid=gid, additional_gids=additional, home=home or "/")


def additional_groups(groups: list[_Group] | None, names: list[str]) -> list[int]:
    """gids for --group-add entries: names must exist in /etc/group, numbers need not."""
    out: list[int] = []
    for name in names:
        num = _parse_numeric(name)
        found = None
        for g in groups or []:
            if (num is not None and g.gid == num) or g.name == name:
                found = g.gid
                break
        if found is None:
            if num is None:
                raise InvalidParameter(f"unable to find group {name}: no matching entries in group file")
            found = num
        if not 0 <= found <= MAX_ID:
            raise InvalidParameter(f"uids and gids must be in range 0-{MAX_ID}")
        if found not in out:
            out.append(found)
    return out
