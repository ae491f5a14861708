"""Which driver a container's log pipeline writes to, and opening it.

File drivers (json-file, local) write the files `docker logs` reads. Remote
drivers (syslog, journald, gelf, fluentd; remote.py) send elsewhere; those that
dockerd cannot read back (all but journald) also write dockerd's dual-logging
cache, `<container dir>/container-cached.log` in the `local` format (rotated by
cache-max-size, cache-max-file, cache-compress), unless `cache-disabled`: a
TeeDriver hands each message to the remote driver, then to the cache, as
dockerd's loggerWithCache does, and its position is the cache's, so the cache
is exactly-once while the remote end gets at-least-once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping

from .jsonfile import JsonFileDriver
from .local import LocalDriver
from .message import LogDriver, Message
from .options import FILES, cache_options
from .remote import REMOTE, open_remote
from .tag import ContainerInfo

CACHE_FILE = "container-cached.log"


@dataclass(frozen=True)
class LogTarget:
    """Where one container's logs go."""
    driver: str              # "json-file" | "local" | one of remote.REMOTE
    path: str                # the file driver's file, or the cache ("": none)
    bundle: str              # spools and cursor
    info: ContainerInfo

    @property
    def remote(self) -> bool:
        return self.driver in REMOTE


class TeeDriver:
    """A remote driver with dockerd's dual-logging cache (loggerWithCache): the remote
    end first (a message it does not take is not cached either), then the cache."""

    def __init__(self, remote: LogDriver, cache: LocalDriver) -> None:
        self.remote = remote
        self.cache = cache

    def log(self, msg: Message) -> bool:
        self.remote.log(msg)
        return self.cache.log(msg)

    def commit(self) -> Mapping[str, int]:
        return self.cache.commit()

    def close(self) -> None:
        try:
            self.remote.close()
        finally:
            self.cache.close()


def open_driver(t: LogTarget, position: Mapping[str, int] | None,
                on_open: Callable[[str], None], remote: LogDriver | None = None) -> LogDriver:
    """(worker thread) The target's driver, reopened at `position` (the cursor's).
    A remote driver connects here unless `remote` is one already opened; ValueError
    with dockerd's text when it cannot start."""
    if t.driver in FILES:
        os.makedirs(os.path.dirname(t.path), exist_ok=True)
        if t.driver == "local":
            return LocalDriver(t.path, t.info, position, on_open)
        return JsonFileDriver(t.path, t.info, position, on_open)
    if remote is None:
        remote = open_remote(t.driver, t.info)
    if not t.path:
        return remote
    try:
        os.makedirs(os.path.dirname(t.path), exist_ok=True)
        cache = LocalDriver(t.path, t.info, position, on_open,
                            cache_options(t.info.options))
    except BaseException:
        remote.close()
        raise
    return TeeDriver(remote, cache)


def interrupt(driver: LogDriver) -> None:
    """(any thread) End a remote driver's sending: a `log` blocked on its endpoint
    raises DriverClosed. A cache is left to the pipeline's own close."""
    (driver.remote if isinstance(driver, TeeDriver) else driver).close()
