"""A build's context, extracted only when a step needs its files.

Extraction is a function of the context tar's bytes (its .dockerignore
included) and the Dockerfile's name, so for a body with the same sha256 and
name, what an earlier build learnt from the extracted tree holds again: the
Dockerfile text and each COPY/ADD source list's content hash. `ContextMemo`
keeps that for a few recent contexts (in memory only: after a restart the
first build extracts). A build whose context is known, and whose steps all
come from the cache, never writes its context to disk: unpacking a few hundred
files (a create, chown, chmod and utime each) and removing them again was
nearly all of a cached build's time. The first step that misses the cache
extracts it (once per build).
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, AsyncIterator

from .context import apply_ignore, tar_padding, unpack_context
from .source import finish

MEMORY_LIMIT = 8 << 20              # bodies up to this size are kept in memory
KEEP_CONTEXTS = 16                  # contexts remembered
KEEP_HASHES = 256                   # source lists remembered per context


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
        return Body(h.hexdigest(), None, path)
    return Body(h.hexdigest(), b"".join(parts), None)


@dataclass
class Known:
    dockerfile: str
    hashes: dict[tuple[str, ...], str] = field(default_factory=dict)


class ContextMemo:
    def __init__(self, keep: int = KEEP_CONTEXTS) -> None:
        self.keep = keep
        self._known: OrderedDict[tuple[str, str], Known] = OrderedDict()

    def get(self, key: tuple[str, str]) -> Known | None:
        known = self._known.get(key)
        if known is not None:
            self._known.move_to_end(key)
        return known

    def put(self, key: tuple[str, str], known: Known) -> None:
        self._known[key] = known
        self._known.move_to_end(key)
        while len(self._known) > self.keep:
            self._known.popitem(last=False)


class BuildContext:
    """The context directory (made on first need) and what is known about it."""

    def __init__(self, root: str | None, known: Known, body: Body | None = None,
                 ctx: str = "") -> None:
        self._root, self.known, self._body, self._ctx = root, known, body, ctx
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
            return cls(None, known, body, ctx)
        root = await asyncio.to_thread(_extract, body, ctx)
        src = await asyncio.to_thread(finish, root, name)
        known = Known(src.dockerfile)
        memo.put(key, known)
        return cls(root, known)

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

    def remember(self, sources: list[str], digest: str) -> None:
        if len(self.known.hashes) < KEEP_HASHES:
            self.known.hashes[tuple(sources)] = digest


def _extract(body: Body, ctx: str) -> str:
    root = os.path.join(ctx, "root")
    os.mkdir(root)
    with body.open() as f:
        unpack_context(f, root)
    return root
