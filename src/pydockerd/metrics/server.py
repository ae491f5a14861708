"""The --metrics-addr endpoint: GET /metrics in Prometheus' text format, served on
the daemon's event loop by an ApiServer of its own (plain HTTP, as dockerd;
no thread: a scrape renders the registry in a few milliseconds).
"""
from __future__ import annotations

import ipaddress
import logging
import os
from typing import Protocol

from prometheus_client import generate_latest

from ..api.http import AnyResponse, Request, Response
from ..api.router import Route, Router
from ..api.server import ApiServer
from ..config import split_host_port
from ..errors import DockerError
from ..system import SystemInfo, VersionInfo
from .families import ContainerCounts, EventCounts, Families, ScrapeTimeCollector

log = logging.getLogger("pydockerd.metrics")

# the text format dockerd serves (prometheus_client's CONTENT_TYPE_LATEST names a newer
# version with the same bytes for our names; Prometheus servers before 3.0 know 0.0.4)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def routes(families: Families) -> list[Route]:
    async def metrics(req: Request) -> AnyResponse:
        return Response(200, generate_latest(families.registry), CONTENT_TYPE)
    return [Route("GET", "/metrics", metrics)]


class EngineFacts(Protocol):
    """What /version and /info report (SystemService)."""

    def version(self) -> VersionInfo: ...
    async def info(self) -> SystemInfo: ...


def engine_labels(info: SystemInfo, version: VersionInfo) -> dict[str, str]:
    """engine_daemon_engine_info's labels, from the values /version and /info report."""
    return {"version": version.version, "commit": version.git_commit,
            "architecture": info.architecture,
            "graphdriver": info.driver, "kernel": info.kernel_version,
            "os": info.operating_system, "os_type": "linux", "os_version": info.os_version,
            "daemon_id": info.id}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MetricsServer:
    """Serves `families` (plus the scrape-time ones) at http://<addr>/metrics."""

    def __init__(self, addr: str, families: Families, containers: ContainerCounts,
                 events: EventCounts, engine: EngineFacts) -> None:
        self.addr = addr
        self._families = families
        self._containers = containers
        self._events = events
        self._engine = engine
        router = Router()
        router.add(routes(families))
        self._server = ApiServer(router)

    async def start(self) -> None:
        """Read the engine's facts (once, as dockerd at start-up) and listen."""
        info = await self._engine.info()
        self._families.registry.register(ScrapeTimeCollector(
            self._containers, self._events, engine_labels(info, self._engine.version()),
            info.ncpu, info.mem_total))
        host, port = split_host_port(self.addr)
        try:
            await self._server.listen_tcp(host, port, None)
        except OSError as e:
            raise DockerError(f"metrics API: listen tcp {self.addr}: "
                              f"{os.strerror(e.errno) if e.errno else e}") from None
        if not is_loopback(host):
            log.warning("metrics API is accessible on %s without encryption or "
                        "authentication", self.addr)
        log.info("metrics API listening on %s", self.addr)

    async def close(self) -> None:
        await self._server.stop_accepting()
        await self._server.finish(0.5)


__all__ = ["MetricsServer", "routes", "engine_labels", "is_loopback"]
