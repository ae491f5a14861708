"""Tar-split: rebuild a layer's original tar byte for byte from its unpacked dir.

`docker save` must hand out layer tars whose sha256 is the config's diff id.
Re-creating an identical tar from files is not possible in general (header
order, pax records, padding, uid names, mtimes precision all vary between
tools), and keeping every original tar doubles the disk a layer costs. So,
like moby's tar-split, we record at unpack time every byte of the tar stream
that is *not* regular-file content (headers, pax/GNU records, padding, the
end-of-archive blocks) and, for each file body, only its length; the bodies
are read back from the unpacked layer dir when the tar is rebuilt.

    layers/<chain>/tar-split.raw    the non-content bytes, concatenated
    layers/<chain>/tar-split.json   {"size", "segments": [[raw_len, content_len, name]...],
                                     "tail": raw_len}

`Recorder` wraps the uncompressed stream that tarfile reads and parses the tar
structure itself (a small state machine over 512-byte blocks); the unpacker
then pairs each content segment with the member name tarfile reported, and
`finish` checks that every body can be read back (a regular file of that
size, reached without symlinks, named once). A layer that fails those checks
(a name written twice, GNU sparse files) has no tar-split and cannot be saved.
Blocking: call from worker threads.
"""
from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, IO, Any

from ..errors import SystemError_
from ..util.fsatomic import write_atomic
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
else:   # OpenSSL's digests: loaded by the first one (issue 10: idle memory)
    hashlib = lazy_import("hashlib")

BLOCK = 512
RAW_FILE = "tar-split.raw"
META_FILE = "tar-split.json"
_REGULAR = (b"0", b"\0", b"7")
_PAX = (b"x", b"X")
_META_DATA = (b"g", b"L", b"K")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")   # tarfile ignores their size field


def _header_size(block: bytes) -> int:
    field_ = block[124:136]
    if field_[0] & 0x80:                    # GNU base-256
        return int.from_bytes(field_[1:], "big")
    s = field_.split(b"\0", 1)[0].strip()
    try:
        return int(s or b"0", 8)
    except ValueError:
        return 0


def _pax_size(data: bytes) -> int | None:
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            return None
        try:
            length = int(data[pos:sp])
        except ValueError:
            return None
        if length <= 0:
            return None
        rec = data[sp + 1:pos + length - 1]
        key, _, value = rec.partition(b"=")
        if key == b"size":
            try:
                return int(value)
            except ValueError:
                return None
        pos += length
    return None


def _pad(n: int) -> int:
    return (-n) % BLOCK


@dataclass
class TarSplit:
    size: int                                    # length of the whole tar
    segments: list[list[Any]]                   # [raw_len, content_len, name]
    tail: int                                    # raw bytes after the last body
    raw: bytes = b""

    def to_doc(self) -> dict[str, Any]:
        return {"size": self.size, "segments": self.segments, "tail": self.tail}


class Recorder:
    """A read() wrapper that records the tar's non-content bytes as they pass."""

    def __init__(self, src: IO[bytes]) -> None:
        self._src = src
        self.raw = bytearray()
        self.contents: list[int] = []            # body lengths, in order
        self._cuts: list[int] = []               # len(raw) when each body starts
        self.total = 0
        self.supported = True
        self._hdr = bytearray()
        self._state = "header"
        self._left = 0                           # bytes left in the current state
        self._pax = bytearray()
        self._collect_pax = False
        self._pax_size: int | None = None
        self._pad_after = 0

    def read(self, n: int = -1) -> bytes:
        b = self._src.read(n)
        if b:
            self._feed(b)
        return b

    def _feed(self, b: bytes) -> None:
        self.total += len(b)
        mv = memoryview(b)
        i = 0
        while i < len(mv):
            if self._state == "header":
                take = min(BLOCK - len(self._hdr), len(mv) - i)
                self._hdr += mv[i:i + take]
                i += take
                if len(self._hdr) == BLOCK:
                    block = bytes(self._hdr)
                    self._hdr.clear()
                    self.raw += block
                    self._header(block)
            elif self._state == "meta":           # pax/GNU records, padding: kept
                take = min(self._left, len(mv) - i)
                chunk = mv[i:i + take]
                self.raw += chunk
                if self._collect_pax:
                    self._pax += chunk
                i += take
                self._left -= take
                if self._left == 0:
                    self._end_meta()
            else:                                  # "content": not kept
                take = min(self._left, len(mv) - i)
                i += take
                self._left -= take
                if self._left == 0:
                    self._to_meta(self._pad_after)

    def _to_meta(self, n: int, collect_pax: bool = False) -> None:
        self._collect_pax = collect_pax
        if n:
            self._state, self._left = "meta", n
        else:
            self._end_meta()

    def _end_meta(self) -> None:
        if self._collect_pax:
            self._pax_size = _pax_size(bytes(self._pax))
            self._pax.clear()
            self._collect_pax = False
        self._state = "header"

    def _header(self, block: bytes) -> None:
        if block == bytes(BLOCK):
            return                                # end-of-archive (or padding) block
        kind = block[156:157]
        size = _header_size(block)
        if kind in _PAX:
            self._pax_size = None
            self._to_meta(size + _pad(size), collect_pax=True)
            return
        if kind in _META_DATA:
            self._to_meta(size + _pad(size))
            return
        if self._pax_size is not None:
            size = self._pax_size
            self._pax_size = None
        if kind == b"S":
            self.supported = False
        if kind in _REGULAR and size > 0:
            self._cuts.append(len(self.raw))
            self.contents.append(size)
            self._state, self._left, self._pad_after = "content", size, _pad(size)
        elif kind in _NO_DATA or kind in _REGULAR:
            self._state = "header"
        else:                                     # unknown type: tarfile skips its data
            self._to_meta(size + _pad(size))

    def result(self, names: list[str]) -> TarSplit | None:
        """The split, pairing bodies with tarfile's member names; None if unusable."""
        if not self.supported or len(names) != len(self.contents) or \
                len(set(names)) != len(names) or self._state != "header" or self._hdr:
            return None
        segments: list[list[Any]] = []
        prev = 0
        for cut, length, name in zip(self._cuts, self.contents, names):
            segments.append([cut - prev, length, name])
            prev = cut
        return TarSplit(self.total, segments, len(self.raw) - prev, bytes(self.raw))


def open_beneath(root: str, rel: str) -> int:
    """Open root/rel read-only without following any symlink; a regular file only."""
    parts = rel.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for p in parts[:-1]:
            nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
            os.close(fd)
            fd = nfd
        out = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise OSError(errno.EINVAL, "not a regular file", rel)
    return out


def verify(split: TarSplit, root: str) -> bool:
    """Every body can be read back from root: a regular file of the recorded size."""
    for _, length, name in split.segments:
        try:
            fd = open_beneath(root, name)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_size != length:
                return False
        finally:
            os.close(fd)
    return True


def write(split: TarSplit, layer_dir: str) -> None:
    write_atomic(os.path.join(layer_dir, RAW_FILE), split.raw, 0o600)
    write_atomic(os.path.join(layer_dir, META_FILE), json.dumps(split.to_doc()), 0o600)


def load(layer_dir: str) -> TarSplit | None:
    try:
        with open(os.path.join(layer_dir, META_FILE)) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    return TarSplit(int(doc["size"]), list(doc["segments"]), int(doc["tail"]))


@dataclass
class Replay:
    """A file-like reader of the rebuilt tar; checks the digest at the end."""

    layer_dir: str
    diff_dir: str
    split: TarSplit
    expected: str                                 # sha256:<hex>
    _hash: Any = field(default_factory=lambda: hashlib.sha256())

    def chunks(self, bufsize: int = 1 << 20) -> Any:
        raw = open(os.path.join(self.layer_dir, RAW_FILE), "rb")
        try:
            for raw_len, length, name in self.split.segments:
                yield from self._copy(raw, raw_len, bufsize)
                fd = open_beneath(self.diff_dir, name)
                with os.fdopen(fd, "rb") as body:
                    yield from self._copy(body, length, bufsize, name)
            yield from self._copy(raw, self.split.tail, bufsize)
        finally:
            raw.close()
        got = "sha256:" + self._hash.hexdigest()
        if got != self.expected:
            raise SystemError_(f"layer {self.expected} rebuilt with digest {got}: "
                               "its files changed on disk")

    def _copy(self, f: IO[bytes], n: int, bufsize: int, name: str = "") -> Any:
        while n > 0:
            b = f.read(min(n, bufsize))
            if not b:
                raise SystemError_(f"layer {self.expected}: {name or 'tar-split'} "
                                   "is shorter than recorded")
            n -= len(b)
            self._hash.update(b)
            yield b
