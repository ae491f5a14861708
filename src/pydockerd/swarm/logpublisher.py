"""`docker service logs` for the tasks of this node: the manager's log broker
sends subscriptions (LogBroker.ListenSubscriptions, one stream per session);
for each, the logs of the matching tasks' containers are read as `docker logs`
reads them and published on a PublishLogs stream, which ends with `close` (a
subscription without follow is complete when every node closed; a followed one
runs until the manager closes it)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable, Protocol

import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp

from ..containers.model import Container
from ..errors import DockerError
from ..logdrivers.message import LogEntry
from ..logdrivers.reader import LogQuery
from .proto import swarmkit_pb2 as pb
from .rpc import LogBroker

log = logging.getLogger("pydockerd.swarm")

STREAMS = {"stdout": pb.LOG_STREAM_STDOUT, "stderr": pb.LOG_STREAM_STDERR}
BATCH = 100          # log messages per PublishLogsMessage
FOLLOW_POLL = 0.5    # how often a followed subscription looks for new tasks


class LogSource(Protocol):
    """The node's tasks and their containers' logs."""
    def task_containers(self) -> list[tuple[pb.Task, Container | None]]: ...
    def read_logs(self, c: Container, q: LogQuery) -> AsyncIterator[list[LogEntry]]: ...


def matches(sel: pb.LogSelector, t: pb.Task) -> bool:
    """SwarmKit's worker: a task matches by its ID, its service or its node."""
    return t.id in sel.task_ids or t.service_id in sel.service_ids \
        or t.node_id in sel.node_ids


def log_query(opts: pb.LogSubscriptionOptions) -> LogQuery:
    """The subscription's options as a `docker logs` query. A negative tail counts
    from the end (-n-1 means the last n); dockerd cannot tail from the start."""
    streams = set(opts.streams)
    since = opts.since.seconds * 10**9 + opts.since.nanos if opts.HasField("since") else 0
    return LogQuery(stdout=not streams or pb.LOG_STREAM_STDOUT in streams,
                    stderr=not streams or pb.LOG_STREAM_STDERR in streams,
                    since_ns=since, tail=-opts.tail - 1 if opts.tail < 0 else -1,
                    timestamps=True, follow=opts.follow)


def log_message(t: pb.Task, e: LogEntry) -> pb.LogMessage:
    ts = Timestamp()
    try:
        ts.FromJsonString(e.time)
    except ValueError:
        pass
    return pb.LogMessage(
        context=pb.LogContext(service_id=t.service_id, node_id=t.node_id, task_id=t.id),
        timestamp=ts, stream=STREAMS.get(e.stream, pb.LOG_STREAM_UNKNOWN), data=e.data,
        attrs=[pb.LogAttr(key=k, value=v) for k, v in e.attrs])


def _forget(running: dict[str, asyncio.Task[None]],
            sub_id: str) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        if running.get(sub_id) is task:
            del running[sub_id]
    return done


class LogPublisher:
    def __init__(self, source: LogSource) -> None:
        self.source = source

    async def listen(self, broker: LogBroker) -> None:
        """Serve subscriptions until the stream ends (the session then ends too)."""
        running: dict[str, asyncio.Task[None]] = {}
        try:
            async for sub in broker.subscriptions():
                if sub.close:
                    task = running.pop(sub.id, None)
                    if task is not None:
                        task.cancel()
                    continue
                if sub.id not in running:
                    running[sub.id] = asyncio.get_running_loop().create_task(
                        self._publish(broker, sub))
                    running[sub.id].add_done_callback(_forget(running, sub.id))
        finally:
            for task in list(running.values()):
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def _publish(self, broker: LogBroker, sub: pb.SubscriptionMessage) -> None:
        call = broker.publish()
        lock = asyncio.Lock()
        q = log_query(sub.options)

        async def write(msg: pb.PublishLogsMessage) -> None:
            async with lock:
                await call.write(msg)

        try:
            if q.follow:
                await self._follow(sub, q, write)
            else:
                for t, c in self._chosen(sub.selector, set()):
                    await self._task_logs(sub.id, t, c, q, write)
        except asyncio.CancelledError:
            pass
        except (DockerError, grpc.aio.AioRpcError) as e:
            log.info("swarm logs %s: %s", sub.id, e)
        finally:
            try:
                await asyncio.shield(self._close(call, sub.id, write))
            except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
                log.debug("swarm logs %s: closing: %s", sub.id, e)

    def _chosen(self, sel: pb.LogSelector, seen: set[str],
                started: bool = False) -> list[tuple[pb.Task, Container]]:
        """The matching tasks with a container (`started`: one that ran, as dockerd
        waits for a followed task's container), not in `seen` (added to it)."""
        out = []
        for t, c in self.source.task_containers():
            if c is None or (started and c.state.status == "created"):
                continue
            if t.id not in seen and matches(sel, t):
                seen.add(t.id)
                out.append((t, c))
        return out

    async def _follow(self, sub: pb.SubscriptionMessage, q: LogQuery, write: Any) -> None:
        """Until the manager closes the subscription: the matching tasks' logs,
        including tasks whose containers appear later (a scale-up, a replacement)."""
        seen: set[str] = set()
        readers: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        try:
            while True:
                for t, c in self._chosen(sub.selector, seen, started=True):
                    readers.append(loop.create_task(self._task_logs(sub.id, t, c, q, write)))
                for r in [r for r in readers if r.done()]:
                    readers.remove(r)
                    if not r.cancelled() and r.exception() is not None:
                        log.info("swarm logs %s: %s", sub.id, r.exception())
                await asyncio.sleep(FOLLOW_POLL)
        finally:
            for r in readers:
                r.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    @staticmethod
    async def _close(call: Any, sub_id: str, write: Any) -> None:
        await write(pb.PublishLogsMessage(subscription_id=sub_id, close=True))
        await call.done_writing()
        await call

    async def _task_logs(self, sub_id: str, t: pb.Task, c: Container, q: LogQuery,
                         write: Any) -> None:
        async for batch in self.source.read_logs(c, q):
            for i in range(0, len(batch), BATCH):
                await write(pb.PublishLogsMessage(
                    subscription_id=sub_id,
                    messages=[log_message(t, e) for e in batch[i:i + BATCH]]))
