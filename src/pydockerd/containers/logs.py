"""A container's logs: where its driver writes (LogTarget for the pipeline) and
reading them back for `docker logs` / attach `logs=1` (logdrivers/reader.py)."""
from __future__ import annotations

import os
from typing import AsyncIterator, Awaitable, Callable

from ..logdrivers.drivers import CACHE_FILE, LogTarget
from ..logdrivers.journal_read import journal_batches
from ..logdrivers.options import FILES, readable, uses_cache
from ..logdrivers.pipeline import LogPipeline
from ..logdrivers.reader import LogQuery, read_entries
from ..logdrivers.message import LogEntry
from ..logdrivers.tag import ContainerInfo
from .model import Container
from .paths import Paths

__all__ = ["LogQuery", "LogEntry", "log_target", "read_logs", "driver_path", "logs_readable"]


def driver_path(c: Container, paths: Paths) -> str:
    """The file the driver writes, dockerd's names (json-file's is also LogPath); the
    dual-logging cache for remote drivers; "" when none (journald, cache-disabled)."""
    cdir = paths.container_dir(c.id)
    lc = c.host_config["LogConfig"]
    if lc["Type"] == "local":
        return os.path.join(cdir, "local-logs", "container.log")
    if lc["Type"] == "json-file":
        return os.path.join(cdir, f"{c.id}-json.log")
    if uses_cache(lc["Type"], lc.get("Config") or {}):
        return os.path.join(cdir, CACHE_FILE)
    return ""


def logs_readable(c: Container) -> bool:
    lc = c.host_config["LogConfig"]
    return readable(lc["Type"], lc.get("Config") or {})


def log_target(c: Container, paths: Paths) -> LogTarget | None:
    """What the pipeline needs for `c`; None when nothing is logged (driver none)."""
    lc = c.host_config["LogConfig"]
    if lc["Type"] == "none":
        return None
    cfg = c.config
    info = ContainerInfo(
        id=c.id, name=c.name, image_id=c.image_id, image_name=c.image,
        command=" ".join([c.path, *c.args]).strip(), hostname=str(cfg.get("Hostname") or ""),
        created=c.created, labels=dict(cfg.get("Labels") or {}),
        env=tuple(cfg.get("Env") or ()), options=dict(lc.get("Config") or {}))
    return LogTarget(lc["Type"], driver_path(c, paths), paths.bundle(c.id), info)


async def read_logs(c: Container, paths: Paths, q: LogQuery, active: Callable[[], bool],
                    changed: Callable[[float], Awaitable[None]],
                    pipeline: LogPipeline) -> AsyncIterator[list[LogEntry]]:
    """Batches of the container's log entries (see logdrivers/reader.py)."""
    driver = c.host_config["LogConfig"]["Type"]
    if not logs_readable(c):
        return
    if driver == "journald":
        async for batch in journal_batches(c.id, q, active):
            yield batch
        return
    fmt = driver if driver in FILES else "local"        # the dual-logging cache
    feed = pipeline.subscribe(c.id) if q.follow else None
    try:
        async for batch in read_entries(driver_path(c, paths), fmt, q, active, changed,
                                        feed.files if feed is not None else None):
            yield batch
    finally:
        if feed is not None:
            pipeline.unsubscribe(c.id, feed)
