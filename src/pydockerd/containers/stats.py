"""Container stats from the cgroup (v1 or v2) and /proc, in Docker's StatsJSON shape."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import dataclass
from typing import Any, AsyncIterator

from ..util.ids import ZERO_TIME, format_time
from ..util.procfs import read_text
from .model import Container
from .state import State

_V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cgroup_dir(cid: str, controller: str) -> str:
    if _V2:
        return f"/sys/fs/cgroup/pydockerd/{cid}"
    return f"/sys/fs/cgroup/{controller}/pydockerd/{cid}"


def _int(path: str) -> int:
    v = read_text(path)
    try:
        return int(v.split()[0]) if v and v.split()[0] != "max" else 0
    except ValueError:
        return 0


def _kv(path: str) -> dict[str, int]:
    out = {}
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def system_cpu_usage() -> int:
    """Host CPU time in nanoseconds, as dockerd computes it from /proc/stat."""
    for line in read_text("/proc/stat").splitlines():
        if line.startswith("cpu "):
            ticks = sum(int(x) for x in line.split()[1:8])
            return ticks * 1_000_000_000 // _CLK_TCK
    return 0


def _cpu(cid: str) -> dict[str, Any]:
    usage: dict[str, Any]
    if _V2:
        st = _kv(os.path.join(cgroup_dir(cid, "cpu"), "cpu.stat"))
        usage = {"total_usage": st.get("usage_usec", 0) * 1000,
                 "usage_in_kernelmode": st.get("system_usec", 0) * 1000,
                 "usage_in_usermode": st.get("user_usec", 0) * 1000}
        throttling = {"periods": st.get("nr_periods", 0),
                      "throttled_periods": st.get("nr_throttled", 0),
                      "throttled_time": st.get("throttled_usec", 0) * 1000}
    else:
        d = cgroup_dir(cid, "cpuacct")
        percpu = [int(x) for x in read_text(os.path.join(d, "cpuacct.usage_percpu")).split()]
        st = _kv(os.path.join(d, "cpuacct.stat"))
        tick_ns = 1_000_000_000 // _CLK_TCK
        usage = {"total_usage": _int(os.path.join(d, "cpuacct.usage")),
                 "percpu_usage": percpu,
                 "usage_in_kernelmode": st.get("system", 0) * tick_ns,
                 "usage_in_usermode": st.get("user", 0) * tick_ns}
        t = _kv(os.path.join(cgroup_dir(cid, "cpu"), "cpu.stat"))
        throttling = {"periods": t.get("nr_periods", 0),
                      "throttled_periods": t.get("nr_throttled", 0),
                      "throttled_time": t.get("throttled_time", 0)}
    return {"cpu_usage": usage, "system_cpu_usage": system_cpu_usage(),
            "online_cpus": os.cpu_count() or 1, "throttling_data": throttling}


def _memory(cid: str) -> dict[str, Any]:
    if _V2:
        d = cgroup_dir(cid, "memory")
        max_ = read_text(os.path.join(d, "memory.max"))
        return {"usage": _int(os.path.join(d, "memory.current")),
                "stats": _kv(os.path.join(d, "memory.stat")),
                "limit": int(max_) if max_.isdigit() else _host_mem()}
    d = cgroup_dir(cid, "memory")
    limit = _int(os.path.join(d, "memory.limit_in_bytes"))
    return {"usage": _int(os.path.join(d, "memory.usage_in_bytes")),
            "max_usage": _int(os.path.join(d, "memory.max_usage_in_bytes")),
            "failcnt": _int(os.path.join(d, "memory.failcnt")),
            "stats": _kv(os.path.join(d, "memory.stat")),
            "limit": min(limit, _host_mem()) if limit else _host_mem()}


_MEM: list[int] = []


def _host_mem() -> int:
    if not _MEM:
        for line in read_text("/proc/meminfo").splitlines():
            if line.startswith("MemTotal:"):
                _MEM.append(int(line.split()[1]) * 1024)
                break
        else:
            _MEM.append(0)
    return _MEM[0]


def _networks(pid: int) -> dict[str, Any]:
    nets = {}
    for line in read_text(f"/proc/{pid}/net/dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        if len(v) >= 16:
            nets[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2],
                          "rx_dropped": v[3], "tx_bytes": v[8], "tx_packets": v[9],
                          "tx_errors": v[10], "tx_dropped": v[11]}
    return nets


def _blkio(cid: str) -> dict[str, Any]:
    entries = []
    if not _V2:
        path = os.path.join(cgroup_dir(cid, "blkio"), "blkio.throttle.io_service_bytes")
        for line in read_text(path).splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, minor = parts[0].split(":")
                entries.append({"major": int(major), "minor": int(minor),
                                "op": parts[1].lower(), "value": int(parts[2])})
    else:
        for line in read_text(os.path.join(cgroup_dir(cid, "io"), "io.stat")).splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, minor = parts[0].split(":")
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            for op, key in (("read", "rbytes"), ("write", "wbytes")):
                entries.append({"major": int(major), "minor": int(minor), "op": op,
                                "value": int(kv.get(key, 0))})
    return {"io_service_bytes_recursive": entries or None, "io_serviced_recursive": None,
            "io_queue_recursive": None, "io_service_time_recursive": None,
            "io_wait_time_recursive": None, "io_merged_recursive": None,
            "io_time_recursive": None, "sectors_recursive": None}


@dataclass(frozen=True)
class Target:
    """What a sample needs, copied on the loop (the thread never sees the record)."""
    id: str
    name: str
    state: State

    @classmethod
    def of(cls, c: Container) -> "Target":
        return cls(c.id, c.name, c.state)


def sample(c: Target) -> dict[str, Any]:
    running = c.state.status in ("running", "paused")
    now = format_time(dt.datetime.now(dt.timezone.utc))
    if not running:
        return {"read": ZERO_TIME, "preread": ZERO_TIME, "name": "/" + c.name, "id": c.id,
                "pids_stats": {}, "blkio_stats": _blkio(c.id) | {"io_service_bytes_recursive":
                                                                 None},
                "num_procs": 0, "storage_stats": {}, "cpu_stats": {
                    "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                  "usage_in_usermode": 0}, "throttling_data": {
                        "periods": 0, "throttled_periods": 0, "throttled_time": 0}},
                "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                               "usage_in_usermode": 0},
                                 "throttling_data": {"periods": 0, "throttled_periods": 0,
                                                     "throttled_time": 0}},
                "memory_stats": {}}
    pids = {"current": _int(os.path.join(cgroup_dir(c.id, "pids"), "pids.current"))}
    limit = read_text(os.path.join(cgroup_dir(c.id, "pids"), "pids.max"))
    if limit.isdigit():
        pids["limit"] = int(limit)
    doc: dict[str, Any] = {
        "read": now, "preread": ZERO_TIME, "name": "/" + c.name, "id": c.id,
        "pids_stats": pids, "blkio_stats": _blkio(c.id), "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(c.id), "memory_stats": _memory(c.id),
    }
    nets = _networks(c.state.pid) if c.state.pid else {}
    if nets:
        doc["networks"] = nets
    return doc


class StatsService:
    async def stream(self, c: Container, stream: bool,
                     one_shot: bool) -> AsyncIterator[dict[str, Any]]:
        empty_pre = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                   "usage_in_usermode": 0},
                     "throttling_data": {"periods": 0, "throttled_periods": 0,
                                         "throttled_time": 0}}
        prev: dict[str, Any] | None = None
        if not stream and not one_shot and c.state.running:
            # like dockerd: a single sample still carries a precpu one second earlier
            prev = await asyncio.to_thread(sample, Target.of(c))
            await asyncio.sleep(1)
        while True:
            cur = await asyncio.to_thread(sample, Target.of(c))
            if prev is not None:
                cur["preread"] = prev["read"]
                cur["precpu_stats"] = prev["cpu_stats"]
            else:
                cur.setdefault("precpu_stats", empty_pre)
            yield cur
            if not stream or not c.state.running:
                return
            prev = cur
            await asyncio.sleep(1)
