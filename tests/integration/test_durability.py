"""State survives daemon restarts and kill -9; live-restore keeps containers running."""
from __future__ import annotations

import json
import signal
import time

from polling import wait_until


def _status(d, ref: str) -> str:
    return d.out("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", ref).strip()


def test_restart_and_kill9_keep_state(fresh_daemon):
    d = fresh_daemon()
    d.cli("run", "--name", "done7", "busybox", "sh", "-c", "exit 7", check=False)
    d.cli("create", "--name", "fresh", "busybox")
    d.cli("run", "-d", "--name", "runner", "busybox", "sleep", "300")
    d.cli("run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "300")
    d.restart(signal.SIGTERM)
    assert _status(d, "done7") == "exited 7"
    assert _status(d, "fresh") == "created 0"
    # without live-restore a graceful stop stops containers; `always` comes back
    assert _status(d, "runner").startswith("exited")
    assert _status(d, "always") == "running 0"
    d.cli("start", "runner")
    d.restart(signal.SIGKILL)
    names = set(d.out("ps", "-a", "--format", "{{.Names}}").split())
    assert {"done7", "fresh", "runner", "always"} <= names
    assert _status(d, "done7") == "exited 7"
    # killed without a chance to stop them: dockerd's restore stops them, `always` restarts
    assert _status(d, "runner").split()[0] == "exited"
    assert _status(d, "always") == "running 0"


def test_live_restore_keeps_containers_running(fresh_daemon):
    d = fresh_daemon("--live-restore")
    cid = d.out("run", "-d", "--name", "lr", "busybox", "sh", "-c",
                "i=0; while true; do echo n$i; i=$((i+1)); sleep 0.2; done").strip()
    pid = d.out("inspect", "-f", "{{.State.Pid}}", "lr").strip()
    d.cli("run", "-d", "--name", "dies", "busybox", "sleep", "1.5")
    d.stop(signal.SIGKILL)
    time.sleep(2.0)          # "dies" exits while the daemon is away
    d.start()
    assert _status(d, "lr") == "running 0"
    assert d.out("inspect", "-f", "{{.State.Pid}}", "lr").strip() == pid
    assert _status(d, "dies") == "exited 0"
    logs = d.out("logs", "lr").split()
    time.sleep(0.6)
    assert len(d.out("logs", "lr").split()) > len(logs)      # logs keep flowing
    assert d.out("exec", "lr", "echo", "still-here") == "still-here\n"
    d.cli("stop", "-t", "1", "lr")
    assert _status(d, "lr").startswith("exited")
    del cid


def test_graceful_restart_with_live_restore(fresh_daemon):
    d = fresh_daemon("--live-restore")
    d.cli("run", "-d", "--name", "keep", "busybox", "sleep", "300")
    d.restart(signal.SIGTERM)
    assert _status(d, "keep") == "running 0"
    d.cli("rm", "-f", "keep")
    assert d.out("ps", "-aq") == ""


def test_failed_start_leaves_nothing_behind(daemon):
    import os
    import subprocess
    veths_before = subprocess.run(["ip", "-o", "link", "show", "master", daemon.bridge],
                                  capture_output=True, text=True).stdout
    r = daemon.cli("run", "--name", "badmount", "-v", "/etc/passwd:/bin", "busybox", "true",
                   check=False)
    assert r.returncode != 0
    doc = daemon.inspect("badmount")
    assert doc["State"]["Status"] == "created" and doc["State"]["Error"]
    mounts = open("/proc/self/mounts").read()
    assert doc["Id"] not in mounts
    veths_after = subprocess.run(["ip", "-o", "link", "show", "master", daemon.bridge],
                                 capture_output=True, text=True).stdout
    assert veths_after == veths_before
    assert not os.path.exists(os.path.join(daemon.exec_root, "netns", doc["Id"]))
    daemon.cli("rm", "badmount")
    assert daemon.cli("version").returncode == 0


def test_orphan_container_files_removed_at_start(fresh_daemon):
    import os
    d = fresh_daemon()
    orphan = os.path.join(d.data_root, "containers", "ab" * 32)
    os.makedirs(os.path.join(orphan, "upper", "etc"))
    d.cli("create", "--name", "kept", "busybox")
    d.restart(signal.SIGKILL)
    assert not os.path.exists(orphan)
    assert _status(d, "kept") == "created 0"


def test_removed_container_files_set_aside_are_purged(fresh_daemon):
    """A removal moves the container's directories aside (`.rm-<id>`) and deletes them
    after its answer; what a crash left set aside goes at the next start."""
    import os
    d = fresh_daemon()
    cid = d.out("create", "busybox").strip()
    d.cli("rm", cid)
    for parent in (os.path.join(d.data_root, "containers"),
                   os.path.join(d.exec_root, "containers")):
        assert not os.path.exists(os.path.join(parent, cid))
        wait_until(lambda: not os.path.exists(os.path.join(parent, ".rm-" + cid)), 10,
                   what="the files set aside deleted")
    left = [os.path.join(d.data_root, "containers", ".rm-" + "cd" * 32),
            os.path.join(d.exec_root, "containers", ".rm-" + "cd" * 32)]
    for path in left:
        os.makedirs(os.path.join(path, "upper", "etc"))
    d.restart(signal.SIGKILL)
    wait_until(lambda: not any(os.path.exists(p) for p in left), 10,
               what="the leftovers purged")


def test_on_failure_limit_survives_daemon_restart(fresh_daemon):
    """--restart on-failure:2 counts restarts across a daemon restart and stops at 2."""
    d = fresh_daemon()
    try:
        d.cli("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "--stop-timeout",
              "1", "busybox", "sh", "-c", "sleep 2; exit 1")
        wait_until(lambda: d.inspect("flaky")["RestartCount"] >= 1, 30, 0.2,
                   "the first restart")
        d.restart(signal.SIGTERM)

        def ended() -> dict | None:
            doc = d.inspect("flaky")
            done = doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited"
            return doc if done else None
        doc = wait_until(ended, 40, 0.2, "exited with RestartCount 2")
        assert doc["State"]["ExitCode"] == 1
        # it stays so: no further restart for a few seconds
        deadline = time.time() + 4
        while time.time() < deadline:
            doc = d.inspect("flaky")
            assert doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited"
            time.sleep(0.3)
    finally:
        d.cli("rm", "-f", "flaky", check=False)


def test_exec_ids_survive_kill9(fresh_daemon):
    """An exec's id reaches the store with its container's next write; a daemon killed
    before that write lists it again from the exec's own record."""
    d = fresh_daemon()
    d.cli("run", "-d", "--name", "execd", "busybox", "sleep", "300")
    d.cli("exec", "execd", "true")
    d.cli("exec", "execd", "true")
    before = d.out("inspect", "-f", "{{json .ExecIDs}}", "execd").strip()
    assert len(json.loads(before)) == 2
    d.restart(signal.SIGKILL)
    assert set(json.loads(d.out("inspect", "-f", "{{json .ExecIDs}}", "execd"))) \
        == set(json.loads(before))
    d.cli("rm", "-f", "execd")
