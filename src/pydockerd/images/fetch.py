"""`docker import <url>`: download an http(s) URL to a spool file, with progress."""
from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator
from urllib.parse import urlsplit

from ..errors import InvalidParameter
from ..progress import Progress, ProgressEvent, Status

_TIMEOUT = 300


def normalise_url(src: str) -> str:
    """moby: a source without a scheme is http://<src>; only http(s) is fetched."""
    parts = urlsplit(src)
    if not parts.scheme:
        src = "http://" + src
        parts = urlsplit(src)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidParameter(f"import source must be an http(s) URL: {src}")
    return src


async def download(src: str, tmp_dir: str) -> AsyncIterator[tuple[ProgressEvent | None, str]]:
    """Yield (progress event, "") while downloading, then (None, spool path)."""
    from ..util.httpclient import HTTPClient, HTTPError, ResponseTimeout, Timeouts

    url = normalise_url(src)
    yield Status(f"Downloading from {url}"), ""
    path = os.path.join(tmp_dir, "import-" + os.urandom(8).hex())
    done = False
    try:
        async with HTTPClient(timeouts=Timeouts(total=_TIMEOUT)) as session:
            async with await session.get(url, allow_redirects=True) as resp:
                if resp.status >= 400:
                    raise InvalidParameter(f"error downloading {url}: HTTP {resp.status}")
                total = resp.content_length or 0
                got = 0
                f = await asyncio.to_thread(open, path, "wb")
                try:
                    async for chunk in resp.iter_chunks(1 << 20):
                        await asyncio.to_thread(f.write, chunk)
                        got += len(chunk)
                        yield Progress("", "Importing", got, total, style="load"), ""
                finally:
                    await asyncio.to_thread(f.close)
        done = True
    except ResponseTimeout:
        raise InvalidParameter(f"error downloading {url}: timed out") from None
    except HTTPError as e:
        raise InvalidParameter(f"error downloading {url}: {e}") from e
    finally:
        if not done and os.path.lexists(path):
            os.unlink(path)
    yield None, path
