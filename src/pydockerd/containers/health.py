"""Health checks: run the container's Healthcheck test periodically, as dockerd does.

State and the last five results show in inspect (State.Health); a change of
status is a `health_status: <status>` event.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from contextlib import aclosing
from typing import Any

from ..instruments import NO_HEALTH_CHECKS, HealthChecks
from ..runtime.exec import start_exec
from ..runtime.execplan import ExecPlan
from ..runtime.nsexec import plan_exec
from ..util.fdstream import read_fds
from ..util.ids import new_id, now_rfc3339
from ..util.tasks import TaskOwner
from .model import Container
from .paths import Paths
from .registry import ContainerRegistry
from .runtimes import Runtimes
from .state import Health

log = logging.getLogger("pydockerd.health")

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
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


def initial_health(config: dict[str, Any]) -> Health | None:
    """A starting container's health: "starting" when it has a health check."""
    return None if test_command(config.get("Healthcheck")) is None else Health("starting")


class HealthMonitor:
    """Runs each running container's health check (a RunObserver of the runner)."""

    def __init__(self, registry: ContainerRegistry, paths: Paths, runtimes: Runtimes,
                 checks: HealthChecks = NO_HEALTH_CHECKS) -> None:
        self.registry = registry
        self.checks = checks
        self.paths = paths
        self.runtimes = runtimes
        self._owner = TaskOwner("health checks")
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def on_start(self, c: Container) -> None:
        self.on_exit(c)
        if c.state.health is not None:
            self._tasks[c.id] = self._owner.spawn(self._run(c), f"health {c.id[:12]}")

    def on_exit(self, c: Container) -> None:
        t = self._tasks.pop(c.id, None)
        if t:
            t.cancel()

    async def close(self) -> None:
        self._tasks.clear()
        await self._owner.close()

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
        paths = self.paths
        try:
            binary = self.runtimes.of(c).binary
            process, plan = await asyncio.to_thread(
                _probe_process, paths.bundle(c.id), cmd, c.id, c.state.pid,
                os.path.basename(binary) == "runc")
            proc = await start_exec(binary, self.runtimes.root,
                                    c.id, process, os.path.join(paths.exec_root, "health"),
                                    new_id(), attach_stdin=False,
                                    attach_output=True, plan=plan)
        except Exception as e:  # noqa: BLE001 - reported as a failed probe
            self.checks.checked(failed=True)
            return {"Start": start, "End": now_rfc3339(), "ExitCode": -1, "Output": str(e)}
        out = bytearray()
        failed = False

        async def collect() -> None:
            fds = [(n, fd) for n, fd in (("stdout", proc.stdout_fd), ("stderr", proc.stderr_fd))
                   if fd is not None]
            async with aclosing(read_fds(fds)) as chunks:
                async for _, data in chunks:
                    if len(out) < MAX_OUTPUT:
                        out.extend(data[:MAX_OUTPUT - len(out)])
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
            failed = True
            out[:] = f"Health check exceeded timeout ({timeout:g}s)".encode()
        finally:
            for fd in {proc.stdout_fd, proc.stderr_fd} - {None}:
                try:
                    os.close(fd)  # type: ignore[arg-type]
                except OSError:
                    pass
        self.checks.checked(failed)
        return {"Start": start, "End": now_rfc3339(), "ExitCode": code,
                "Output": out.decode(errors="replace")}

    def _record(self, c: Container, result: dict[str, Any], retries: int,
                in_start_period: bool) -> None:
        h = c.state.health
        if h is None:
            return
        new = h.probed(result, retries, in_start_period)
        self.registry.commit_fact(c, state=c.state.with_health(new))
        if new.status != h.status:
            self.registry.event(c, f"health_status: {new.status}")


def _probe_process(bundle: str, cmd: list[str], cid: str, init_pid: int,
                   fast: bool) -> tuple[dict[str, Any], ExecPlan | None]:
    """In a worker thread: the probe's process spec (the container's, running `cmd`),
    and the plan to start it without runc when the container runs on runc."""
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    process = dict(spec["process"])
    process.update({"args": cmd, "terminal": False})
    return process, plan_exec(cid, init_pid, spec, process) if fast else None
