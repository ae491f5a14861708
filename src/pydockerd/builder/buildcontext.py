"""A build's context, extracted only when a step needs its files.

Extraction is a function of the context tar's bytes (its .dockerignore
included) and the Dockerfile's name, so for a body with the same digest and
name, what an earlier build learnt from the extracted tree holds again: the
Dockerfile text and each COPY/ADD source list's content hash. The digest of a
plain tar kept in memory leaves out the entries' times (`tree_digest`: nothing
remembered depends on them), else it is the body's sha256. `ContextMemo`
keeps that for a few recent contexts, in memory and in
<data-root>/builder/contexts.json (so also after a restart). A build whose
context is known, and whose steps all come from the cache, never writes its
context to disk: unpacking a few hundred files (a create, chown, chmod and
utime each) and removing them again was nearly all of a cached build's time.
The first step that misses the cache extracts it (once per build).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import AsyncIterator, IO, TYPE_CHECKING

from ..util.fsatomic import write_atomic
from .context import apply_ignore, tar_padding, unpack_context
from .source import finish
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")

log = logging.getLogger("pydockerd.builder")

MEMORY_LIMIT = 8 << 20              # bodies up to this size are kept in memory
KEEP_CONTEXTS = 16                  # contexts remembered
KEEP_HASHES = 256                   # source lists remembered per context
_VERSION = 2                        # of the memo file (its hashes: context.content_hash)


@dataclass
class Body:
    """The request body, spooled: in memory, else in a file."""

    digest: str
    data: bytes | None
    path: str | None

    def open(self) -> IO[bytes]:
        """The tar, padded (the CLI's `-f <outside the context>` tar lacks its end)."""
        if self.data is not None:
            return io.BytesIO(self.data + tar_padding(self.data[:6], len(self.data)))
        assert self.path is not None
        with open(self.path, "rb+") as f:
            head = f.read(6)
            size = f.seek(0, os.SEEK_END)
            f.write(tar_padding(head, size))
        return open(self.path, "rb")


async def spool_body(chunks: AsyncIterator[bytes], path: str) -> Body:
    h = hashlib.sha256()
    parts: list[bytes] = []
    size = 0
    f: IO[bytes] | None = None
    try:
        async for chunk in chunks:
            h.update(chunk)
            size += len(chunk)
            if f is None and size <= MEMORY_LIMIT:
                parts.append(chunk)
                continue
            if f is None:
                f = open(path, "wb")
                await asyncio.to_thread(f.writelines, parts)
                parts = []
            await asyncio.to_thread(f.write, chunk)
    finally:
        if f is not None:
            f.close()
    if f is not None:
        return Body("raw:" + h.hexdigest(), None, path)
    data = b"".join(parts)
    tree = await asyncio.to_thread(tree_digest, data)
    return Body(tree or "raw:" + h.hexdigest(), data, None)


_TIMES = ("mtime", "atime", "ctime")


def tree_digest(data: bytes) -> str | None:
    """sha256 over what extracting this plain tar makes, except the times (and
    owner names, which extraction ignores): everything remembered about a context
    is independent of them, so a checkout or `touch` that only changes mtimes
    keeps the context known. None: compressed, sparse or unreadable (the raw
    digest is the key then)."""
    h = hashlib.sha256()
    view = memoryview(data)
    try:
        with tarfile.open(fileobj=io.BytesIO(data + tar_padding(data[:6], len(data))),
                          mode="r:") as tar:
            for m in tar:
                if m.sparse is not None:
                    return None
                pax = sorted((k, v) for k, v in m.pax_headers.items() if k not in _TIMES)
                h.update(repr((m.name, m.type, m.mode, m.uid, m.gid, m.size, m.linkname,
                               m.devmajor, m.devminor, pax)).encode())
                if m.isreg():
                    h.update(view[m.offset_data:m.offset_data + m.size])
    except (tarfile.TarError, EOFError, ValueError, OSError):
        return None
    return "tree:" + h.hexdigest()


@dataclass
class Known:
    dockerfile: str
    hashes: dict[tuple[str, ...], str] = field(default_factory=dict)


class ContextMemo:
    """What is known about recent contexts, kept in `path` (JSON, replaced
    atomically) so a restart does not forget it; an unreadable file is an empty
    memo (it is only ever a shortcut)."""

    def __init__(self, path: str | None = None, keep: int = KEEP_CONTEXTS) -> None:
        self.path, self.keep = path, keep
        self._known: OrderedDict[tuple[str, str], Known] | None = None
        self._generation = 0                 # of the content; the file has _written
        self._written = 0
        self._write_lock = threading.Lock()

    def _contexts(self) -> OrderedDict[tuple[str, str], Known]:
        if self._known is None:
            self._known = OrderedDict()
            self._drop_stale_temps()
            try:
                with open(self.path or "", "rb") as f:
                    doc = json.load(f)
                for c in doc["contexts"] if doc.get("version") == _VERSION else []:
                    self._known[(str(c["digest"]), str(c["name"]))] = Known(
                        str(c["dockerfile"]), {tuple(str(x) for x in srcs): str(h)
                                               for srcs, h in c["hashes"]})
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                if not isinstance(e, FileNotFoundError) and self.path:
                    log.warning("build context memo %s not read: %s", self.path, e)
        return self._known

    def _drop_stale_temps(self) -> None:
        """write_atomic's temp files of a daemon killed while writing (before this
        one writes any)."""
        if not self.path:
            return
        folder, name = os.path.split(self.path)
        try:
            stale = [n for n in os.listdir(folder) if n.startswith(name + ".tmp")]
        except OSError:
            return
        for n in stale:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, n))

    def get(self, key: tuple[str, str]) -> Known | None:
        known = self._contexts().get(key)
        if known is not None:
            self._contexts().move_to_end(key)
        return known

    def put(self, key: tuple[str, str], known: Known) -> None:
        contexts = self._contexts()
        contexts[key] = known
        contexts.move_to_end(key)
        while len(contexts) > self.keep:
            contexts.popitem(last=False)

    async def save(self) -> None:
        if self.path is None:
            return
        self._generation += 1
        doc = {"version": _VERSION, "contexts": [
            {"digest": d, "name": n, "dockerfile": k.dockerfile,
             "hashes": [[list(srcs), h] for srcs, h in k.hashes.items()]}
            for (d, n), k in self._contexts().items()]}
        await asyncio.to_thread(self._write, self._generation,
                                json.dumps(doc, separators=(",", ":")).encode())

    def _write(self, generation: int, data: bytes) -> None:
        assert self.path is not None
        with self._write_lock:
            if generation <= self._written:          # a newer content is there already
                return
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                write_atomic(self.path, data, 0o600, fsync=False)
                self._written = generation
            except OSError as e:                       # a full disk: only a shortcut lost
                log.warning("build context memo %s not written: %s", self.path, e)


class BuildContext:
    """The context directory (made on first need) and what is known about it."""

    def __init__(self, root: str | None, known: Known, body: Body | None = None,
                 ctx: str = "", memo: ContextMemo | None = None) -> None:
        self._root, self.known, self._body, self._ctx = root, known, body, ctx
        self._memo = memo
        self._lock = asyncio.Lock()

    @property
    def dockerfile(self) -> str:
        return self.known.dockerfile

    @classmethod
    def extracted(cls, root: str, dockerfile: str) -> BuildContext:
        """A context already on disk (a remote one): nothing to remember."""
        return cls(root, Known(dockerfile))

    @classmethod
    async def from_body(cls, body: Body, ctx: str, name: str,
                        memo: ContextMemo) -> BuildContext:
        """The body's context: known (nothing extracted yet), or extracted now (so a
        bad tar or Dockerfile is an error before the build's stream)."""
        key = (body.digest, name)
        known = memo.get(key)
        if known is not None:
            return cls(None, known, body, ctx, memo)
        root = await asyncio.to_thread(_extract, body, ctx)
        src = await asyncio.to_thread(finish, root, name)
        known = Known(src.dockerfile)
        memo.put(key, known)
        await memo.save()
        return cls(root, known, memo=memo)

    async def files(self) -> str:
        """The context directory, extracted if it is not yet."""
        async with self._lock:
            if self._root is None:
                assert self._body is not None
                root = await asyncio.to_thread(_extract, self._body, self._ctx)
                # the Dockerfile is known; .dockerignore still applies to the files
                await asyncio.to_thread(apply_ignore, root, [])
                self._root = root
            return self._root

    def known_hash(self, sources: list[str]) -> str | None:
        return self.known.hashes.get(tuple(sources))

    async def remember(self, sources: list[str], digest: str) -> None:
        if len(self.known.hashes) < KEEP_HASHES:
            self.known.hashes[tuple(sources)] = digest
            if self._memo is not None:
                await self._memo.save()


def _extract(body: Body, ctx: str) -> str:
    root = os.path.join(ctx, "root")
    os.mkdir(root)
    with body.open() as f:
        unpack_context(f, root)
    return root
