"""Health checks: run the container's Healthcheck test periodically, as dockerd does.

State and the last five results show in inspect (State.Health); a change of
status is a `health_status: <status>` event.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from typing import Any

from ..runtime.exec import start_exec
from ..util.ids import now_rfc3339
from .model import Container, Health

log = logging.getLogger("pydockerd.health")

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096


def _secs(ns: Any, default: float) -> float:
    return ns / 1e9 if ns else default


def test_command(hc: dict[str, Any] | None) -> list[str] | None:
    """The command to run, or None when there is no (enabled) health check."""
    if not hc or not hc.get("Test"):
        return None
    test = list(hc["Test"])
    kind = test[0]
    if kind == "NONE":
        return None
    if kind == "CMD":
        return test[1:] or None
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return None


class HealthMonitor:
    def __init__(self, containers: Any) -> None:
        self.containers = containers
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def on_start(self, c: Container) -> None:
        self.stop(c.id)
        if test_command(c.config.get("Healthcheck")) is None:
            c.state.health = None
            return
        c.state.health = Health(status="starting")
        self._tasks[c.id] = asyncio.get_running_loop().create_task(self._run(c))

    def stop(self, cid: str) -> None:
        t = self._tasks.pop(cid, None)
        if t:
            t.cancel()

    async def _run(self, c: Container) -> None:
        hc = c.config["Healthcheck"]
        interval = _secs(hc.get("Interval"), DEFAULT_INTERVAL)
        timeout = _secs(hc.get("Timeout"), DEFAULT_TIMEOUT)
        retries = int(hc.get("Retries") or DEFAULT_RETRIES)
        start_period = _secs(hc.get("StartPeriod"), 0.0)
        start_interval = _secs(hc.get("StartInterval"), 5.0) if hc.get("StartInterval") \
            else interval
        started = asyncio.get_running_loop().time()
        cmd = test_command(hc)
        assert cmd is not None
        try:
            while c.state.status in ("running", "paused"):
                in_start = asyncio.get_running_loop().time() - started < start_period
                await asyncio.sleep(start_interval if in_start and
                                    c.state.health and c.state.health.status == "starting"
                                    else interval)
                if c.state.status != "running" or c.state.health is None:
                    continue
                result = await self._probe(c, cmd, timeout)
                self._record(c, result, retries, in_start)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - a broken probe must not kill the daemon
            log.exception("health check of %s", c.id[:12])

    async def _probe(self, c: Container, cmd: list[str], timeout: float) -> dict[str, Any]:
        start = now_rfc3339()
        paths = self.containers.paths
        work = os.path.join(paths.exec_root, "health", c.id)
        try:
            with open(os.path.join(paths.bundle(c.id), "config.json")) as f:
                process = dict(json.load(f)["process"])
            process.update({"args": cmd, "terminal": False})
            proc = await start_exec(self.containers.runtime(c).binary, self.containers.runc.root,
                                    c.id, process, work, attach_stdin=False,
                                    attach_output=True)
        except Exception as e:  # noqa: BLE001 - reported as a failed probe
            shutil.rmtree(work, ignore_errors=True)
            return {"Start": start, "End": now_rfc3339(), "ExitCode": -1, "Output": str(e)}
        loop = asyncio.get_running_loop()
        out = bytearray()

        async def collect() -> None:
            for fd in (proc.stdout_fd, proc.stderr_fd):
                if fd is None:
                    continue
                os.set_blocking(fd, False)
            done = asyncio.Event()
            live = [fd for fd in (proc.stdout_fd, proc.stderr_fd) if fd is not None]

            def readable(fd: int) -> None:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    return
                except OSError:
                    data = b""
                if data:
                    if len(out) < MAX_OUTPUT:
                        out.extend(data[:MAX_OUTPUT - len(out)])
                    return
                loop.remove_reader(fd)
                live.remove(fd)
                if not live:
                    done.set()
            for fd in list(live):
                loop.add_reader(fd, readable, fd)
            try:
                await done.wait()
            finally:
                for fd in live:
                    loop.remove_reader(fd)
        try:
            await asyncio.wait_for(collect(), timeout)
            code = await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            try:
                os.kill(proc.pid, 9)
            except ProcessLookupError:
                pass
            await proc.wait()
            code = -1
            out[:] = f"Health check exceeded timeout ({timeout:g}s)".encode()
        finally:
            for fd in {proc.stdout_fd, proc.stderr_fd} - {None}:
                try:
                    os.close(fd)  # type: ignore[arg-type]
                except OSError:
                    pass
            shutil.rmtree(work, ignore_errors=True)
        return {"Start": start, "End": now_rfc3339(), "ExitCode": code,
                "Output": out.decode(errors="replace")}

    def _record(self, c: Container, result: dict[str, Any], retries: int,
                in_start_period: bool) -> None:
        h = c.state.health
        if h is None:
            return
        old = h.status
        h.log = (h.log + [result])[-MAX_LOG:]
        if result["ExitCode"] == 0:
            h.status, h.failing_streak = "healthy", 0
        elif not in_start_period or h.status != "starting":
            h.failing_streak += 1
            if h.failing_streak >= retries:
                h.status = "unhealthy"
        self.containers.save(c)
        if h.status != old:
            self.containers.event(c, f"health_status: {h.status}")
