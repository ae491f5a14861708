"""Log subscriptions without daemons: which tasks a selector picks, how the
subscription options become a `docker logs` query (tail counted from the end as
-n-1, since, streams), and the published message."""
from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from pydockerd.logdrivers.message import LogEntry
from pydockerd.swarm.logpublisher import log_message, log_query, matches
from pydockerd.swarm.proto import swarmkit_pb2 as pb

TASK = pb.Task(id="t1", service_id="s1", node_id="n1")


def test_selector_matches_task_service_or_node():
    assert matches(pb.LogSelector(task_ids=["t1"]), TASK)
    assert matches(pb.LogSelector(service_ids=["x", "s1"]), TASK)
    assert matches(pb.LogSelector(node_ids=["n1"]), TASK)
    assert not matches(pb.LogSelector(task_ids=["t2"], service_ids=["s2"],
                                      node_ids=["n2"]), TASK)
    assert not matches(pb.LogSelector(), TASK)


def test_options_become_a_logs_query():
    q = log_query(pb.LogSubscriptionOptions())
    assert (q.stdout, q.stderr, q.tail, q.since_ns, q.follow, q.timestamps) == \
        (True, True, -1, 0, False, True)
    assert log_query(pb.LogSubscriptionOptions(tail=-2)).tail == 1     # --tail 1
    assert log_query(pb.LogSubscriptionOptions(tail=-1)).tail == 0     # --tail 0
    q = log_query(pb.LogSubscriptionOptions(streams=[pb.LOG_STREAM_STDERR], follow=True,
                                            since=Timestamp(seconds=10, nanos=5)))
    assert (q.stdout, q.stderr, q.follow, q.since_ns) == (False, True, True, 10**10 + 5)


def test_log_message_carries_the_task_context():
    m = log_message(TASK, LogEntry("stderr", b"oops\n", "2026-11-30T10:00:00.123456789Z",
                                   (("k", "v"),)))
    assert (m.context.task_id, m.context.service_id, m.context.node_id) == ("t1", "s1", "n1")
    assert m.stream == pb.LOG_STREAM_STDERR and m.data == b"oops\n"
    assert (m.timestamp.seconds % 60, m.timestamp.nanos) == (0, 123456789)
    assert [(a.key, a.value) for a in m.attrs] == [("k", "v")]
