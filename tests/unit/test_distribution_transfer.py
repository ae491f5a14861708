"""Transfer rules of registry pulls and pushes (moby distribution/xfer): which
failures are retried, the back-off display, the daemon-wide concurrency limit,
and the flags/daemon.json keys that set them."""
from __future__ import annotations

import asyncio
import errno

import pytest

from pydockerd.cli import parse_config
from pydockerd.distribution.client import RegistryError, TransportError, UnexpectedStatus
from pydockerd.distribution.transfer import (LayerVerificationFailed, Limiter, count_down,
                                             retryable)
from pydockerd.errors import DockerError, InvalidParameter
from pydockerd.progress import LayerStatus, ProgressEvent


@pytest.mark.parametrize("err, again", [
    (TransportError('Get "x": connection reset by peer'), True),
    (UnexpectedStatus(500, "Internal Server Error"), True),
    (UnexpectedStatus(503, "Service Unavailable"), True),
    (RegistryError(400, "UNKNOWN", "bad"), True),
    (RegistryError(401, "UNAUTHORIZED", "authentication required"), False),
    (RegistryError(403, "DENIED", "denied"), False),
    (RegistryError(404, "BLOB_UNKNOWN", "blob unknown to registry"), False),
    (RegistryError(429, "TOOMANYREQUESTS", "slow down"), False),
    (RegistryError(400, "NAME_UNKNOWN", "no such repository"), False),
    (LayerVerificationFailed("sha256:ab", resumed=False), False),
    (LayerVerificationFailed("sha256:ab", resumed=True), True),
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (InvalidParameter("manifest too large"), False),
])
def test_retryable_as_moby(err: BaseException, again: bool) -> None:
    assert retryable(err) is again


def test_unexpected_status_message_is_dockerds() -> None:
    assert str(UnexpectedStatus(500, "Internal Server Error")) == \
        "received unexpected HTTP status: 500 Internal Server Error"


def test_count_down_shows_every_second() -> None:
    seen: list[ProgressEvent] = []
    asyncio.run(count_down(3, "abc", seen.append, tick=0))
    assert seen == [LayerStatus("abc", "Retrying in 3 seconds"),
                    LayerStatus("abc", "Retrying in 2 seconds"),
                    LayerStatus("abc", "Retrying in 1 second")]


def test_limiter_caps_holders_and_reads_limit_at_use() -> None:
    limit = [2]
    peak = [0, 0]                                   # [now, max]

    async def one(lim: Limiter) -> None:
        async with lim:
            peak[0] += 1
            peak[1] = max(peak)
            await asyncio.sleep(0.01)
            peak[0] -= 1

    async def main() -> None:
        lim = Limiter(lambda: limit[0])
        await asyncio.gather(*(one(lim) for _ in range(6)))
        assert peak[1] == 2
        limit[0], peak[1] = 1, 0
        await asyncio.gather(*(one(lim) for _ in range(4)))
        assert peak[1] == 1
        limit[0], peak[1] = 0, 0                    # 0: no limit (moby)
        assert not lim.busy()
        await asyncio.gather(*(one(lim) for _ in range(5)))
        assert peak[1] == 5
    asyncio.run(main())


def test_flags_and_daemon_json(tmp_path) -> None:
    missing = str(tmp_path / "none.json")
    cfg, _ = parse_config(["--config-file", missing])
    assert (cfg.max_concurrent_downloads, cfg.max_concurrent_uploads,
            cfg.max_download_attempts) == (3, 5, 5)
    cfg, _ = parse_config(["--config-file", missing, "--max-download-attempts", "2",
                           "--max-concurrent-downloads", "0", "--max-concurrent-uploads", "7"])
    assert (cfg.max_concurrent_downloads, cfg.max_concurrent_uploads,
            cfg.max_download_attempts) == (0, 7, 2)
    js = tmp_path / "daemon.json"
    js.write_text('{"max-download-attempts": 3, "max-concurrent-downloads": 1}')
    cfg, _ = parse_config(["--config-file", str(js)])
    assert (cfg.max_download_attempts, cfg.max_concurrent_downloads) == (3, 1)
    for argv, msg in ((["--max-download-attempts", "0"], "invalid max download attempts: 0"),
                      (["--max-concurrent-downloads", "-1"],
                       "invalid max concurrent downloads: -1"),
                      (["--max-concurrent-uploads", "-2"], "invalid max concurrent uploads: -2")):
        with pytest.raises(DockerError, match=msg):
            parse_config(["--config-file", missing, *argv])
