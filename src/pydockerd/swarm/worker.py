"""What runs inside each session besides the heartbeats: the Assignments
stream (chained sets applied to the executor; a gap reopens the stream for a
new COMPLETE set), the log subscriptions (logpublisher.py) and the status reporter (UpdateTaskStatus, batched; every
task's status again at the start of each session, since the manager drops
what does not move a task forward)."""
from __future__ import annotations

import asyncio
import logging

import grpc.aio

from .assignments import AssignmentChain, AssignmentGap
from .executor import Executor
from .proto import swarmkit_pb2 as pb
from .logpublisher import LogPublisher
from .rpc import Dispatcher, LogBroker

log = logging.getLogger("pydockerd.swarm")

REPORT_TIMEOUT = 10.0


class Worker:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.chain = AssignmentChain()
        self.pending: dict[str, pb.TaskStatus] = {}
        self.wake = asyncio.Event()
        executor.reporter = self.report
        self.publisher = LogPublisher(executor)

    async def logs(self, broker: LogBroker) -> None:
        await self.publisher.listen(broker)

    def report(self, task_id: str, status: pb.TaskStatus) -> None:
        self.pending[task_id] = status
        self.wake.set()

    async def assignments(self, dispatcher: Dispatcher, session_id: str) -> None:
        """Until the stream ends (the session then ends too)."""
        while True:
            self.chain.reset()
            stream = dispatcher.assignments(session_id)
            try:
                async for msg in stream:
                    changes = self.chain.apply(msg)
                    log.debug("swarm assignments: %s tasks %s, removed %s",
                              "complete" if changes.complete else "incremental",
                              {tid: (t.desired_state, t.status.state)
                               for tid, t in changes.tasks.items()},
                              changes.removed_tasks)
                    await self.executor.assign(changes)
                return
            except AssignmentGap as e:
                log.info("swarm: %s; asking for the full set again", e)
            finally:
                stream.cancel()         # the gRPC call, when we left it for a gap

    async def reporter(self, dispatcher: Dispatcher, session_id: str) -> None:
        for tid, st in self.executor.statuses().items():
            self.pending.setdefault(tid, st)
        self.wake.set()
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, {}
            if not batch:
                continue
            try:
                await dispatcher.update_task_status(session_id, batch, REPORT_TIMEOUT)
            except grpc.aio.AioRpcError:
                # kept for the next session (newer statuses of the same tasks win)
                self.pending = {**batch, **self.pending}
                raise
