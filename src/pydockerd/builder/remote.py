"""What the builder fetches from elsewhere: a remote context (`remote=` of POST /build:
a git repository, a tarball or a plain Dockerfile over HTTP) and the URL sources of
ADD. moby's builder/remotecontext (detect.go, remote.go, git/gitutils.go) and
dockerfile/copy.go (downloadSource) are the reference."""
from __future__ import annotations

import asyncio
import os
import posixpath
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import (DockerError, Forbidden, InvalidParameter, NotFound, SystemError_,
                      Unauthorized)
from ..runtime.users import resolve_in_root
from ..util.httpclient import HTTPClient, HTTPError, InvalidURL, Timeouts
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import email.utils as email_utils
else:
    email_utils = lazy_import("email.utils")

_GIT_SUFFIX = re.compile(r"\.git(?:#.+)?$")
# moby's acceptableRemoteMIME: what a remote context may be served as
_MIME = re.compile(r"(?:application/(?:(?:x-)?tar|octet-stream|((?:x-)?(?:gzip|bzip2?|xz)))"
                   r"|(?:text/plain))")
_PREAMBLE = 100
_CONNECT_TIMEOUT, _READ_TIMEOUT = 30, 300
UNNAMED = "__unnamed__"


def is_url(s: str) -> bool:
    """moby's urlutil.IsURL."""
    return s.startswith(("http://", "https://"))


def is_git_url(s: str) -> bool:
    """moby's urlutil.IsGitURL: an http(s) URL ending in .git (and #fragment), git://,
    git@ or github.com/."""
    if is_url(s) and _GIT_SUFFIX.search(s):
        return True
    return s.startswith(("git://", "github.com/", "git@"))


def _status_error(url: str, status: int, reason: str, body: bytes) -> DockerError:
    """GetWithStatusError: the status and the trimmed body, as moby words it."""
    msg = (f"failed to GET {url} with status {status} {reason}: "
           f"{body.decode('utf-8', 'replace').strip()}")
    cls: type[DockerError] = {404: NotFound, 400: InvalidParameter, 401: Unauthorized,
                              403: Forbidden}.get(status, DockerError)
    return cls(msg)


@dataclass(frozen=True)
class Download:
    path: str               # the file written
    filename: str           # from the URL path or Content-Disposition, "" if neither
    content_type: str
    size: int


async def download(url: str, directory: str, prefix: str = "") -> Download:
    """GET url into a new 0600 file under directory (mtime from Last-Modified, else
    the epoch). An HTTP status >= 400 is moby's error for it."""
    try:
        timeouts = Timeouts(connect=_CONNECT_TIMEOUT, read=_READ_TIMEOUT)
        async with HTTPClient(timeouts=timeouts) as session:
            async with await session.get(url, allow_redirects=True) as resp:
                if resp.status >= 400:
                    body = await resp.read(1 << 16)
                    raise _status_error(url, resp.status, resp.reason or "", body)
                filename = _filename(urllib.parse.urlsplit(url).path,
                                     resp.headers.get("Content-Disposition", ""))
                path = os.path.join(directory, filename or UNNAMED)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                size = 0
                with os.fdopen(fd, "wb") as f:
                    async for chunk in resp.iter_chunks(1 << 16):
                        size += len(chunk)
                        await asyncio.to_thread(f.write, chunk)
                mtime = 0.0
                parsed = email_utils.parsedate_to_datetime(resp.headers["Last-Modified"]) \
                    if resp.headers.get("Last-Modified") else None
                if parsed is not None:
                    mtime = parsed.timestamp()
                os.utime(path, (mtime, mtime))
                return Download(path, filename, resp.headers.get("Content-Type", ""), size)
    except InvalidURL as e:
        raise InvalidParameter(f"{prefix}invalid URL {url}: {e}") from None
    except HTTPError as e:
        raise SystemError_(f"{prefix}Get \"{url}\": {e or type(e).__name__}") from None
    except DockerError as e:
        e.message = prefix + e.message
        e.args = (e.message,)
        raise


def _filename(path: str, disposition: str) -> str:
    """getFilenameForDownload: the URL path's last element, else Content-Disposition's
    filename, else ""."""
    if path and not path.endswith("/"):
        name = posixpath.basename(urllib.parse.unquote(path))
        if name:
            return name
    if disposition:
        m = re.search(r'filename="?([^";]+)"?', disposition)
        if m and not m.group(1).endswith("/"):
            return posixpath.basename(m.group(1))
    return ""


def context_kind(content_type: str, path: str) -> str:
    """inspectResponse: "text" (a Dockerfile alone) or "archive"; an unusable
    Content-Type is refused."""
    ct = content_type
    if not ct or ct.split(";")[0].strip() == "application/octet-stream":
        with open(path, "rb") as f:
            head = f.read(_PREAMBLE)
        if not head:
            raise InvalidParameter("empty response")
        ct = _sniff(head)
    m = _MIME.search(ct)
    if m is None:
        raise InvalidParameter(f"unsupported Content-Type {content_type!r}")
    return "text" if m.group(0) == "text/plain" else "archive"


def _sniff(head: bytes) -> str:
    """Go's http.DetectContentType, for what a context can be: compressed data and
    binary are octet-stream, text without control bytes is text/plain."""
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")):
        return "application/octet-stream"
    if any(b < 0x20 and b not in (9, 10, 12, 13, 27) for b in head):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


# --- git -----------------------------------------------------------------------------
@dataclass(frozen=True)
class GitRemote:
    remote: str
    ref: str
    subdir: str


def parse_git_url(url: str) -> GitRemote:
    """gitutils.parseRemoteURL: `#ref:subdir`, ref defaults to master."""
    if not url.startswith("git@") and urllib.parse.urlsplit(url).scheme not in (
            "git", "http", "https", "ssh"):
        url = "https://" + url
    remote, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    ref = ref or "master"
    if ref.startswith("-"):
        raise InvalidParameter(f"invalid refspec: {ref}")
    return GitRemote(remote, ref, subdir)


async def _git(cwd: str, *args: str) -> tuple[int, str]:
    env = dict(os.environ, GIT_PROTOCOL_FROM_USER="0", GIT_CONFIG_NOSYSTEM="1",
               HOME="/dev/null", GIT_TERMINAL_PROMPT="0")
    proc = await asyncio.create_subprocess_exec(
        "git", "-c", "protocol.file.allow=never", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, out.decode("utf-8", "replace")


async def _smart_http(url: str) -> bool:
    """supportsShallowClone: a dumb HTTP server cannot fetch --depth 1."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return True
    try:
        async with HTTPClient(timeouts=Timeouts(total=30)) as s:
            async with await s.get(url + "/info/refs?service=git-upload-pack",
                                   allow_redirects=True) as r:
                return r.status == 200 and r.headers.get("Content-Type") == \
                    "application/x-git-upload-pack-advertisement"
    except HTTPError:
        return False


async def git_clone(url: str, root: str) -> str:
    """Fetch the repository into the empty dir root (moby's gitRepo.clone) and return
    the context directory (root or its subdir)."""
    if shutil.which("git") is None:
        raise InvalidParameter("unable to prepare context: git is not installed on the "
                               "daemon's host (needed for a git URL context); install git "
                               "or send the context as a tar")
    repo = parse_git_url(url)
    code, out = await _git(root, "init", "-q")
    if code:
        raise SystemError_(f"failed to init repo at {root}: {out}")
    code, out = await _git(root, "remote", "add", "origin", repo.remote)
    if code:
        raise SystemError_(f"failed add origin repo at {repo.remote}: {out}")
    depth = ["--depth", "1"] if await _smart_http(repo.remote) else []
    code, out = await _git(root, "fetch", *depth, "origin", "--", repo.ref)
    if code:
        raise DockerError(f"error fetching: {out}: exit status {code}")
    code, out = await _git(root, "checkout", repo.ref)
    if code:
        code2, _ = await _git(root, "checkout", "FETCH_HEAD")
        if code2:
            raise DockerError(f"error checking out {repo.ref}: {out}: exit status {code}")
    code, out = await _git(root, "submodule", "update", "--init", "--recursive", "--depth=1")
    if code:
        raise DockerError(f"error initializing submodules: {out}: exit status {code}")
    if not repo.subdir:
        return root
    try:
        sub = resolve_in_root(root, repo.subdir)
    except DockerError:
        raise InvalidParameter(f"error setting git context, {repo.subdir!r} not within "
                               "git root") from None
    if not os.path.isdir(sub):
        raise InvalidParameter(f"error setting git context, not a directory: {repo.subdir}")
    return sub
