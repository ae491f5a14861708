"""Daemon shutdown within dockerd's bound, every exit recorded; and a start after a
crash with containers left running that answers at once and settles them after."""
from __future__ import annotations

import json
import os
import signal
import time

from polling import wait_until

N = 30


def _run_many(d, n: int, *args: str) -> list[str]:
    return [d.out("run", "-d", *args, "busybox", "sleep", "300").strip() for _ in range(n)]


def _states(d) -> dict[str, tuple[str, int]]:
    ids = d.out("ps", "-aq", "--no-trunc").split()
    docs = json.loads(d.out("inspect", *ids)) if ids else []
    return {doc["Id"]: (doc["State"]["Status"], doc["State"]["ExitCode"]) for doc in docs}


def _runc_leftovers(d) -> list[str]:
    root = os.path.join(d.exec_root, "runc")
    return os.listdir(root) if os.path.isdir(root) else []


def _remove_all(d) -> None:
    if d.proc is None:
        return                  # the fixture's cleanup kills and unmounts what is left
    ids = d.cli("ps", "-aq", check=False).stdout.decode().split()
    if ids:
        d.cli("rm", "-f", *ids, check=False)


def test_shutdown_honours_the_bound_and_records_every_exit(fresh_daemon):
    d = fresh_daemon("--shutdown-timeout", "1")
    try:
        # `sleep` as PID 1 ignores SIGTERM: killed after its own stop timeout (2 s)
        sleepers = _run_many(d, N, "--stop-timeout", "2")
        # exits by itself 2 s after SIGTERM: dockerd waits its own stop timeout
        # (6 s), not the shorter --shutdown-timeout, so its exit code is its own
        graceful = d.out("run", "-d", "--stop-timeout", "6", "busybox", "sh", "-c",
                         "trap 'echo bye; sleep 2; exit 3' TERM; while true; do sleep 0.1; done"
                         ).strip()
        # dockerd's bound: max(--shutdown-timeout, longest stop timeout + 5 s) = 11 s
        t0 = time.monotonic()
        d.stop(signal.SIGTERM, timeout=60)
        took = time.monotonic() - t0
        assert took < 11 + 4, f"shutdown took {took:.1f} s\n{d.log_tail()}"
        d.start()
        states = _states(d)         # recorded by the shutdown: right at the first answer
        assert states[graceful] == ("exited", 3), d.log_tail()
        assert {states[c] for c in sleepers} == {("exited", 137)}
        # what it wrote while the daemon stopped it is in its log (its spool kept it)
        wait_until(lambda: "bye" in d.out("logs", graceful), 10, 0.2, "its last words")
        wait_until(lambda: not _runc_leftovers(d), 30, 0.2, "no runc container left")
    finally:
        _remove_all(d)


def test_start_after_a_crash_settles_containers_left_running(fresh_daemon):
    d = fresh_daemon()
    try:
        ids = _run_many(d, N)
        d.stop(signal.SIGKILL)
        d.start()
        wait_until(lambda: not d.out("ps", "-q"), 60, 0.2, "no container left running")
        states = _states(d)
        assert {states[c][0] for c in ids} == {"exited"}, d.log_tail()
        wait_until(lambda: not _runc_leftovers(d), 30, 0.2, "no runc container left")
        # every one can be used again: started, stopped
        d.cli("start", ids[0])
        assert d.inspect(ids[0])["State"]["Running"]
        d.cli("stop", "-t", "0", ids[0])
    finally:
        _remove_all(d)
