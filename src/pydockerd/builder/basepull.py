"""FROM of an image that is not here: pulled through the distribution service."""
from __future__ import annotations

from typing import AsyncIterator, Awaitable, Callable, Protocol

from ..distribution.auth import AuthConfig
from ..errors import DockerError
from ..progress import ErrorEvent, ProgressEvent


def split_tag(t: str) -> tuple[str, str | None]:
    slash = t.rfind("/")
    colon = t.rfind(":")
    if colon > slash:
        return t[:colon], t[colon + 1:]
    return t, None


class Puller(Protocol):
    """What a FROM of a missing image needs from the distribution service."""

    async def pull(self, from_image: str, tag: str | None, platform: str | None,
                   auth: AuthConfig) -> AsyncIterator[ProgressEvent]: ...


def registry_pull(distribution: Callable[[], Puller]) -> Callable[[str], Awaitable[None]]:
    """FROM of an image not here: pull it as `docker pull` would (same errors), through
    the service `distribution()` returns (built by the first pull: composition.py)."""

    async def pull(ref: str) -> None:
        name, tag = split_tag(ref)
        if "@" in ref:
            name, tag = ref, None
        stream = await distribution().pull(name, tag or "latest", None, AuthConfig())
        async for ev in stream:
            if isinstance(ev, ErrorEvent):
                raise DockerError(ev.message)
    return pull
