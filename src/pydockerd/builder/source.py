"""Where a build's context comes from (moby's remotecontext.Detect): the request body
(a tar, plain or compressed: buildcontext.py) or the `remote` URL (a git
repository, a tarball, or a plain-text Dockerfile alone); then the Dockerfile is
read and .dockerignore applied (also to the Dockerfile and .dockerignore
themselves, as dockerd's removeDockerfile: the Dockerfile is read first, so an
ignored one still drives the build)."""
from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass

from ..errors import InvalidParameter
from ..runtime.users import resolve_in_root
from .context import apply_ignore, unpack_context
from .remote import context_kind, download, git_clone, is_git_url, is_url


@dataclass(frozen=True)
class Source:
    root: str              # the context directory
    dockerfile: str        # its text


async def from_remote(url: str, ctx: str, dockerfile: str) -> Source:
    """`remote=`: git URL, tarball URL or a plain-text Dockerfile URL."""
    if is_git_url(url):
        clone = os.path.join(ctx, "git")
        os.mkdir(clone)
        root = await git_clone(url, clone)
        return await asyncio.to_thread(finish, root, dockerfile)
    if not is_url(url):
        raise InvalidParameter(f"remoteURL ({url}) could not be recognized as URL")
    got = await download(url, tempfile.mkdtemp(prefix="remote-", dir=ctx),
                         f"error downloading remote context {url}: ")
    try:
        kind = context_kind(got.content_type, got.path)
    except InvalidParameter as e:
        raise InvalidParameter(f"error detecting content type for remote {url}: "
                               f"{e.message}") from None
    if kind == "text":
        root = os.path.join(ctx, "root")
        os.mkdir(root)
        with open(got.path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if not text:
            raise InvalidParameter(f"the Dockerfile ({dockerfile}) cannot be empty")
        return Source(root, text)
    try:
        root = await _unpack(got.path, ctx)
    finally:
        os.unlink(got.path)
    return await asyncio.to_thread(finish, root, dockerfile)


async def _unpack(tar_path: str, ctx: str) -> str:
    root = os.path.join(ctx, "root")
    os.mkdir(root)
    with open(tar_path, "rb") as f:
        await asyncio.to_thread(unpack_context, f, root)
    return root


def finish(root: str, name: str) -> Source:
    text = read_dockerfile(root, name)
    apply_ignore(root, [])
    return Source(root, text)


def read_dockerfile(root: str, name: str) -> str:
    """withDockerfileFromContext: the named file, `dockerfile` when the default name
    is missing, else moby's (backwards compatible) error."""
    for candidate in [name] + (["dockerfile"] if name == "Dockerfile" else []):
        try:
            with open(resolve_in_root(root, candidate), encoding="utf-8",
                      errors="replace") as f:
                text = f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        if not text:
            raise InvalidParameter(f"the Dockerfile ({candidate}) cannot be empty")
        return text
    raise InvalidParameter(f"Cannot locate specified Dockerfile: {name}")
