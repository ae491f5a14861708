"""Reading a container's journald messages back (`docker logs` with the journald
driver): `journalctl -o json CONTAINER_ID_FULL=<id>` and its records as LogEntries,
with `docker logs`' stream filter and follow (journal_batches)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Callable, Mapping

from ..util.ids import to_unix_ns
from .golike import local_rfc3339
from .message import LogEntry
from .reader import LogQuery


def journalctl_args(container_id: str, *, since_ns: int = 0, until_ns: int = 0,
                    tail: int = -1, follow: bool = False,
                    directory: str | None = None) -> list[str]:
    """The journalctl command line for one container's messages, oldest first."""
    args = ["journalctl", "--no-pager", "--all", "-o", "json",
            "--output-fields=MESSAGE,PRIORITY,"
            "CONTAINER_PARTIAL_MESSAGE,SYSLOG_TIMESTAMP,CONTAINER_ID_FULL"]
    if directory:
        args += ["--directory", directory]
    if since_ns:
        args.append(f"--since=@{since_ns // 1000 / 1e6:.6f}")
    if until_ns:
        args.append(f"--until=@{until_ns // 1000 / 1e6:.6f}")
    if tail >= 0:
        args.append(f"--lines={tail}")
    if follow:
        args.append("--follow")
        if tail < 0:
            args.append("--lines=all")      # --follow alone starts at the last 10
    args.append(f"CONTAINER_ID_FULL={container_id}")
    return args


def _field_bytes(value: Any) -> bytes:
    """journalctl's JSON gives a field as a string, or as a byte array when it is not
    valid UTF-8 or holds control characters."""
    if isinstance(value, list):
        return bytes(int(b) & 0xFF for b in value)
    return str(value if value is not None else "").encode()


def entry_from_json(obj: Mapping[str, Any]) -> LogEntry | None:
    """One journalctl JSON record -> a LogEntry (None when it is not a message)."""
    if "MESSAGE" not in obj:
        return None
    line = _field_bytes(obj["MESSAGE"])
    partial = _field_bytes(obj.get("CONTAINER_PARTIAL_MESSAGE")) == b"true"
    stream = "stderr" if _field_bytes(obj.get("PRIORITY")) == b"3" else "stdout"
    ns = 0
    stamp = obj.get("SYSLOG_TIMESTAMP")
    if isinstance(stamp, str):
        try:
            ns = to_unix_ns(stamp)
        except ValueError:
            ns = 0
    if not ns:
        ns = int(str(obj.get("__REALTIME_TIMESTAMP") or 0)) * 1000
    return LogEntry(stream, line if partial else line + b"\n",
                    local_rfc3339(ns, 9, trim=True, utc=True))


async def read_journal(container_id: str, *, since_ns: int = 0, until_ns: int = 0,
                       tail: int = -1, follow: bool = False,
                       directory: str | None = None) -> AsyncIterator[LogEntry]:
    """The container's messages, oldest first (then new ones while `follow`). The
    journalctl process ends with the iteration (or its cancellation)."""
    proc = await asyncio.create_subprocess_exec(
        *journalctl_args(container_id, since_ns=since_ns, until_ns=until_ns, tail=tail,
                         follow=follow, directory=directory),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, limit=1 << 24)
    assert proc.stdout is not None
    try:
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                break
            try:
                entry = entry_from_json(json.loads(raw))
            except ValueError:
                continue
            if entry is not None:
                yield entry
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def journal_batches(container_id: str, q: LogQuery, active: Callable[[], bool],
                          quiet: float = 0.5) -> AsyncIterator[list[LogEntry]]:
    """`docker logs` of a journald container, in batches. With `q.follow`, new
    messages until the container is no longer `active` (stopped, its output all
    sent) and the journal has been quiet for `quiet` seconds."""
    proc = await asyncio.create_subprocess_exec(
        *journalctl_args(container_id, since_ns=q.since_ns, until_ns=q.until_ns,
                         tail=q.tail, follow=q.follow),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, limit=1 << 24)
    assert proc.stdout is not None
    batch: list[LogEntry] = []
    idle_since = 0.0
    line: asyncio.Task[bytes] | None = None
    loop = asyncio.get_running_loop()
    try:
        while True:
            if line is None:
                line = asyncio.ensure_future(proc.stdout.readline())
            done, _ = await asyncio.wait({line}, timeout=0.1)
            if not done:
                if batch:
                    yield batch
                    batch = []
                if q.follow and not active():
                    idle_since = idle_since or loop.time()
                    if loop.time() - idle_since >= quiet:
                        break
                continue
            raw, line, idle_since = line.result(), None, 0.0
            if not raw:
                break
            try:
                entry = entry_from_json(json.loads(raw))
            except ValueError:
                continue
            if entry is not None and (q.stdout if entry.stream == "stdout" else q.stderr):
                batch.append(entry)
                if len(batch) >= 512:
                    yield batch
                    batch = []
        if batch:
            yield batch
    finally:
        if line is not None:
            line.cancel()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
