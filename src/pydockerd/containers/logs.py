"""A container's logs: where its driver writes (LogTarget for the pipeline) and
reading them back for `docker logs` / attach `logs=1` (logdrivers/reader.py)."""
from __future__ import annotations

import os
from typing import AsyncIterator, Awaitable, Callable

from ..logdrivers.options import READABLE
from ..logdrivers.pipeline import LogPipeline, LogTarget
from ..logdrivers.reader import LogQuery, read_entries
from ..logdrivers.message import LogEntry
from ..logdrivers.tag import ContainerInfo
from .model import Container
from .paths import Paths

__all__ = ["LogQuery", "LogEntry", "log_target", "read_logs", "driver_path"]


def driver_path(c: Container, paths: Paths) -> str:
    """The driver's live file: dockerd's names (json-file's is also LogPath)."""
    cdir = paths.container_dir(c.id)
    if c.host_config["LogConfig"]["Type"] == "local":
        return os.path.join(cdir, "local-logs", "container.log")
    return os.path.join(cdir, f"{c.id}-json.log")


def log_target(c: Container, paths: Paths) -> LogTarget | None:
    """What the pipeline needs for `c`; None when nothing is logged (driver none)."""
    lc = c.host_config["LogConfig"]
    if lc["Type"] not in READABLE:
        return None
    cfg = c.config
    info = ContainerInfo(
        id=c.id, name=c.name, image_id=c.image_id, image_name=c.image,
        command=" ".join([c.path, *c.args]).strip(), hostname=str(cfg.get("Hostname") or ""),
        labels=dict(cfg.get("Labels") or {}), env=tuple(cfg.get("Env") or ()),
        options=dict(lc.get("Config") or {}))
    return LogTarget(lc["Type"], driver_path(c, paths), paths.bundle(c.id), info)


async def read_logs(c: Container, paths: Paths, q: LogQuery, active: Callable[[], bool],
                    changed: Callable[[float], Awaitable[None]],
                    pipeline: LogPipeline) -> AsyncIterator[list[LogEntry]]:
    """Batches of the container's log entries (see logdrivers/reader.py)."""
    driver = c.host_config["LogConfig"]["Type"]
    if driver not in READABLE:
        return
    feed = pipeline.subscribe(c.id) if q.follow else None
    try:
        async for batch in read_entries(driver_path(c, paths), driver, q, active, changed,
                                        feed.files if feed is not None else None):
            yield batch
    finally:
        if feed is not None:
            pipeline.unsubscribe(c.id, feed)
