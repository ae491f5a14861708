"""COPY/ADD: sources from the context (or another stage's rootfs) written into a
root filesystem. Everything goes through a tar and tarsafe's extractor, so a
symlink in the destination image is never written through. With --userns-remap
(`ids`) the tar carries the container's ids and the extractor writes host ids;
sources from another stage (`sources_remapped`) are unmapped into the tar first.
Blocking."""
from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Callable, TYPE_CHECKING

from ..errors import DockerError, InvalidParameter
from ..runtime.users import resolve_in_root, resolve_user
from ..util.idmap import IDENTITY, IdMap
from .context import _ContextExtractor
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")


def parse_chown(root: str, value: str) -> tuple[int, int] | None:
    """--chown=user[:group], numeric or looked up in the image's /etc/passwd and
    /etc/group (a numeric user alone means that gid too, as moby)."""
    if not value:
        return None
    user, _, group = value.partition(":")
    if user.isdigit() and (not group or group.isdigit()):
        return int(user), int(group) if group else int(user)
    try:
        u = resolve_user(root, value)
    except DockerError as e:
        raise InvalidParameter(f"unable to convert uid/gid chown string to host mapping: "
                               f"{e.message}") from None
    return u.uid, u.gid


def _filter(owner: tuple[int, int] | None,
            unmap: IdMap | None) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    def f(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        if owner is not None:
            ti.uid, ti.gid = owner
        elif unmap is not None:
            ti.uid, ti.gid = unmap.to_container(ti.uid, ti.gid)
        ti.uname = ti.gname = ""
        return ti
    return f


def _is_archive(path: str) -> bool:
    try:
        return os.path.isfile(path) and tarfile.is_tarfile(path)
    except OSError:
        return False


def copy_into(root: str, sources: list[str], dest: str, workdir: str,
              chown: str, extract_archives: bool,
              never_extract: frozenset[str] = frozenset(), ids: IdMap = IDENTITY,
              sources_remapped: bool = False) -> None:
    """Copy host paths `sources` to the container path `dest` under root (ADD:
    extract_archives, except the sources in never_extract: downloaded files)."""
    owner = parse_chown(root, chown)
    unmap = ids if sources_remapped and ids.remapped else None
    if not posixpath.isabs(dest):
        dest = posixpath.join(workdir or "/", dest)
    to_dir = dest.endswith("/") or dest.endswith("/.") or len(sources) > 1
    dest_norm = posixpath.normpath(dest)
    existing = resolve_in_root(root, dest_norm)
    if os.path.isdir(existing) or (len(sources) == 1 and os.path.isdir(sources[0])
                                   and not os.path.islink(sources[0])):
        to_dir = True
    if len(sources) > 1 and not dest.endswith("/"):
        raise InvalidParameter("When using COPY with more than one source file, "
                               "the destination must be a directory and end with a /")
    if to_dir:
        target_dir, name = dest_norm, None
    else:
        target_dir, name = posixpath.split(dest_norm)
    dir_owner = ids.to_host(*owner) if owner is not None else \
        (ids.root() if ids.remapped else None)
    host_dir = _mkdir_in_root(root, target_dir, dir_owner)
    fd, tar_path = tempfile.mkstemp(prefix="copy-", dir=os.path.dirname(root.rstrip("/")))
    os.close(fd)
    try:
        archives: list[str] = []
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            for src in sources:
                if extract_archives and src not in never_extract and _is_archive(src):
                    archives.append(src)
                    continue
                if os.path.isdir(src) and not os.path.islink(src):
                    for entry in sorted(os.listdir(src)):
                        tar.add(os.path.join(src, entry), arcname=entry, recursive=True,
                                filter=_filter(owner, unmap))
                else:
                    tar.add(src, arcname=name or os.path.basename(src), recursive=False,
                            filter=_filter(owner, unmap))
        for path in [tar_path] + archives:
            ex = _ContextExtractor(host_dir, ids)
            with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:*") as tar:
                for m in tar:
                    ex.entry(tar, m)
            ex.finish()
    except tarfile.TarError as e:
        raise InvalidParameter(f"copy failed: {e}") from e
    finally:
        os.unlink(tar_path)


def _mkdir_in_root(root: str, path: str, owner: tuple[int, int] | None) -> str:
    """mkdir -p of a container path, symlinks resolved inside root."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = posixpath.join(current, part)
        host = resolve_in_root(root, current)
        if not os.path.lexists(host):
            os.mkdir(host, 0o755)
            if owner is not None:
                os.lchown(host, *owner)
        elif not os.path.isdir(host) or os.path.islink(host):
            raise InvalidParameter(f"copy failed: {current} is not a directory")
    return resolve_in_root(root, path)
