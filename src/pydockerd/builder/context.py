"""The build context: an untrusted tar unpacked (through tarsafe) into a temp
dir, .dockerignore applied, and COPY/ADD sources resolved inside it."""
from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import re
import shutil
import stat
from typing import IO, TYPE_CHECKING

from ..errors import InvalidParameter, NotFound
from ..images.tarsafe import Extractor
from ..runtime.users import resolve_in_root
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")


class _ContextExtractor(Extractor):
    """tarsafe's rules, but `.wh.` names are plain files here."""

    def whiteout(self, m: tarfile.TarInfo, parent: str, base: str) -> None:
        raise InvalidParameter(f"invalid build context entry {m.name!r}: reserved name")


def unpack_context(src: IO[bytes], root: str) -> None:
    """Extract the context tar (plain or compressed) into the empty dir root."""
    _ContextExtractor(root).extract(src, "invalid build context")


def tar_padding(head: bytes, size: int) -> bytes:
    """The docker CLI's `-f <outside the context>` tar lacks the padding after its
    last file (Go's reader tolerates that, tarfile does not): what to append to an
    uncompressed tar of this size (its first bytes: head) for padding and an
    end-of-archive marker (extra zero blocks are harmless); nothing for a
    compressed one."""
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")):
        return b""
    return b"\0" * ((-size) % 512 + 1024)


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                out = out[:-2] + "(.*/)?"
                i += 1
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            j = pattern.find("]", i)
            if j < 0:
                out += re.escape(ch)
            else:
                out += fnmatch.translate(pattern[i:j + 1])[4:-3]
                i = j
        else:
            out += re.escape(ch)
        i += 1
    return re.compile("^" + out + "(/.*)?$")


def read_ignore(root: str) -> list[tuple[bool, re.Pattern[str]]]:
    path = os.path.join(root, ".dockerignore")
    if not os.path.isfile(path) or os.path.islink(path):
        return []
    rules: list[tuple[bool, re.Pattern[str]]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            line = line[1:].strip() if neg else line
            line = posixpath.normpath(line).lstrip("/")
            if line and line != ".":
                rules.append((neg, pattern_regex(line)))
    return rules


def ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    hit = False
    for neg, rx in rules:
        if rx.match(rel):
            hit = not neg
    return hit


def apply_ignore(root: str, keep: list[str]) -> None:
    """Delete the files .dockerignore excludes (the Dockerfile itself stays)."""
    rules = read_ignore(root)
    if not rules:
        return
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        for name in list(dirnames) + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in keep or not ignored(rel, rules):
                continue
            if name in dirnames and not any(neg for neg, _ in rules):
                shutil.rmtree(full)
                dirnames.remove(name)
            elif name not in dirnames or os.path.islink(full):
                os.unlink(full)
                if name in dirnames:
                    dirnames.remove(name)


def resolve_sources(root: str, src: str) -> list[str]:
    """Host paths of a COPY source (globs allowed), never outside root."""
    norm = posixpath.normpath("/" + src)
    if norm == "/":
        return [os.path.abspath(root)]
    if not any(c in norm for c in "*?["):
        path = resolve_in_root(root, norm)
        if not os.path.lexists(path):
            raise NotFound(f"COPY failed: file not found in build context or excluded by "
                           f".dockerignore: stat {src.lstrip('/')}: file does not exist")
        return [path]
    parent, pattern = posixpath.split(norm)
    base = resolve_in_root(root, parent)
    try:
        names = sorted(n for n in os.listdir(base) if fnmatch.fnmatchcase(n, pattern))
    except OSError:
        names = []
    if not names:
        raise NotFound(f"COPY failed: no source files were specified matching {src!r}")
    return [os.path.join(base, n) for n in names]


def content_hash(paths: list[str]) -> str:
    """moby-style source digest: file:<hex>, dir:<hex> or multi:<hex>."""
    h = hashlib.sha256()
    for p in paths:
        for dirpath, dirnames, filenames in (os.walk(p) if os.path.isdir(p)
                                             and not os.path.islink(p)
                                             else [(os.path.dirname(p), [],
                                                    [os.path.basename(p)])]):
            dirnames.sort()
            for name in sorted(filenames + dirnames):
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                h.update(f"{os.path.relpath(full, p)}\0{st.st_mode}\0{st.st_uid}:"
                         f"{st.st_gid}\0".encode())
                if stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                elif stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(full).encode())
    kind = "multi" if len(paths) > 1 else ("dir" if os.path.isdir(paths[0]) else "file")
    return f"{kind}:{h.hexdigest()}"
