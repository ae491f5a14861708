"""Paused containers across a daemon crash, and stopping a frozen container.

A process frozen by the cgroup freezer never dies of SIGKILL until it is thawed:
the daemon start after a crash thaws a paused container it kills (without
live-restore) and keeps it paused with live-restore, as dockerd does; `docker
stop` and `docker kill` of a paused container work, and so do stop, kill and rm -f
of one frozen behind the daemon's back (through the runtime's kill, as dockerd).
Every test thaws what it froze before its daemon is stopped (else the cleanup hangs
on the frozen process).
"""
from __future__ import annotations

import signal
import time

import pytest

from freezer import freeze_v1, is_frozen_v1, thaw
from polling import wait_until


def _status(d, ref: str) -> str:
    return d.out("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", ref).strip()


def _counts(d) -> str:
    return d.out("info", "--format", "{{.ContainersRunning}} {{.ContainersPaused}} "
                 "{{.ContainersStopped}}").strip()


@pytest.mark.timeout(240)
def test_paused_container_is_stopped_after_a_daemon_crash(fresh_daemon):
    d = fresh_daemon()
    ids = []
    try:
        ids.append(d.out("run", "-d", "--name", "pz", "--stop-timeout", "1", "busybox",
                         "sleep", "300").strip())
        ids.append(d.out("run", "-d", "--name", "pa", "--restart", "always", "busybox",
                         "sleep", "300").strip())
        d.cli("pause", "pz")
        d.cli("pause", "pa")
        assert _counts(d) == "0 2 0"
        d.stop(signal.SIGKILL)
        d.start(timeout=40)     # it used to wait forever for the frozen process to die
        # without live-restore what was left running is stopped, paused or not; the
        # restart policy then starts `pa` again
        assert _status(d, "pz") == "exited 137"
        assert _status(d, "pa") == "running 0"
        assert _counts(d) == "1 0 1"
        d.cli("start", "pz")
        assert _status(d, "pz") == "running 0"
        d.cli("pause", "pz")
        d.restart(signal.SIGTERM)             # a graceful stop stops it too
        assert _status(d, "pz") == "exited 137" and _counts(d) == "1 0 1"
        d.cli("rm", "-f", "pz", "pa")
        assert _counts(d) == "0 0 0"
    finally:
        for cid in ids:
            thaw(cid)


@pytest.mark.timeout(240)
def test_paused_container_stays_paused_with_live_restore(fresh_daemon):
    d = fresh_daemon("--live-restore")
    cid = d.out("run", "-d", "--name", "lp", "busybox", "sleep", "300").strip()
    try:
        pid = d.inspect("lp")["State"]["Pid"]
        d.cli("pause", "lp")
        d.stop(signal.SIGKILL)
        d.start(timeout=40)
        assert _status(d, "lp") == "paused 0"
        assert d.inspect("lp")["State"]["Pid"] == pid
        assert _counts(d) == "0 1 0"
        d.restart(signal.SIGKILL)             # and again
        assert _status(d, "lp") == "paused 0" and _counts(d) == "0 1 0"
        d.cli("unpause", "lp")
        assert _counts(d) == "1 0 0"
        d.cli("pause", "lp")
        # thawed while the daemon is away: recorded running at its start, as dockerd
        d.stop(signal.SIGKILL)
        thaw(cid)
        d.start(timeout=40)
        assert _status(d, "lp") == "running 0" and _counts(d) == "1 0 0"
        assert d.out("exec", "lp", "echo", "thawed") == "thawed\n"
        d.cli("pause", "lp")
        d.cli("stop", "-t", "1", "lp")        # a paused container stops
        assert _status(d, "lp") == "exited 137" and _counts(d) == "0 0 1"
    finally:
        thaw(cid)


@pytest.mark.timeout(120)
def test_stop_and_kill_of_a_paused_container(daemon, names):
    a, b = "pstop", "pkill"
    names.extend([a, b])
    ids = [daemon.out("run", "-d", "--name", n, "--stop-timeout", "1", "busybox",
                      "sleep", "300").strip() for n in (a, b)]
    try:
        daemon.cli("pause", a, b)
        began = time.monotonic()
        daemon.cli("stop", a)                 # SIGTERM, thawed, then SIGKILL after 1 s
        assert time.monotonic() - began < 8
        assert _status(daemon, a) == "exited 137"
        daemon.cli("kill", b)
        assert _status(daemon, b) == "exited 137"
        daemon.cli("start", a)
        assert _status(daemon, a) == "running 0"
        daemon.cli("pause", a)
        daemon.cli("rm", "-f", a)
        assert a not in daemon.out("ps", "-a", "--format", "{{.Names}}").split()
    finally:
        for cid in ids:
            thaw(cid)
        daemon.cli("rm", "-f", a, b, check=False)


def _actions(d, cid: str, since: str) -> list[str]:
    return d.out("events", "--since", since, "--until", str(int(time.time()) + 1),
                 "--filter", "container=" + cid, "--format", "{{.Action}}").split()


@pytest.mark.timeout(120)
def test_events_of_stop_and_kill_of_a_paused_container(daemon, names):
    """dockerd 20.10: a paused container being stopped is resumed and shown so (its
    events kill 15, unpause, kill 9, die, stop; here the kills are not shown); one
    killed (SIGKILL: runc kill thaws it) shows no unpause; neither logs a failed
    resume (it warned at every one)."""
    a, b = "pevstop", "pevkill"
    names.extend([a, b])
    ids = [daemon.out("run", "-d", "--name", n, "--stop-timeout", "1", "busybox",
                      "sleep", "300").strip() for n in (a, b)]
    try:
        daemon.cli("pause", a, b)
        since = f"{time.time():.6f}"
        daemon.cli("stop", a)
        daemon.cli("kill", b)
        assert _status(daemon, a) == "exited 137" and _status(daemon, b) == "exited 137"
        assert _actions(daemon, ids[0], since) == ["unpause", "die", "stop"]
        assert _actions(daemon, ids[1], since) == ["kill", "die"]
        log = daemon.log_path.read_text(errors="replace")
        assert not [line for line in log.splitlines() if "resuming paused" in line
                    and (ids[0][:12] in line or ids[1][:12] in line)]
    finally:
        for cid in ids:
            thaw(cid)
        daemon.cli("rm", "-f", a, b, check=False)


@pytest.mark.timeout(120)
def test_a_signal_to_a_paused_container_resumes_it_as_dockerd(daemon, names):
    """moby's killWithSignal resumes a paused container for a signal when it has no
    stop signal configured or the signal is its stop signal (events kill, unpause);
    else it stays paused, the signal pending."""
    plain, other = "psigplain", "psigother"
    names.extend([plain, other])
    script = "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done"
    ids = [daemon.out("run", "-d", "--name", plain, "busybox", "sh", "-c", script).strip(),
           daemon.out("run", "-d", "--name", other, "--stop-signal", "USR2", "busybox",
                      "sh", "-c", script).strip()]
    try:
        daemon.cli("pause", plain, other)
        since = f"{time.time():.6f}"
        daemon.cli("kill", "-s", "USR1", plain)
        assert _status(daemon, plain) == "running 0"
        wait_until(lambda: "got-usr1" in daemon.out("logs", plain), 20, what="the trap")
        assert _actions(daemon, ids[0], since) == ["kill", "unpause"]
        daemon.cli("kill", "-s", "USR1", other)       # not its stop signal
        assert _status(daemon, other) == "paused 0"
        assert _counts(daemon).split()[1] != "0"
        daemon.cli("kill", "-s", "USR2", other)       # its stop signal
        assert _status(daemon, other) == "running 0"
        assert _actions(daemon, ids[1], since) == ["kill", "kill", "unpause"]
    finally:
        for cid in ids:
            thaw(cid)
        daemon.cli("rm", "-f", plain, other, check=False)


@pytest.mark.timeout(180)
def test_a_container_frozen_behind_the_daemons_back_is_stopped_killed_and_removed(
        daemon, names):
    """SIGKILL cannot end a process frozen on cgroup v1 (it pends until a thaw): the
    runtime's kill, which thaws it, follows when the exit is not seen within a
    second. dockerd (runc kill): stop -t 1 in 1.1 s, kill in 0.1 s, both exited 137."""
    stopped, killed, removed = "pfrozen-stop", "pfrozen-kill", "pfrozen-rm"
    names.extend([stopped, killed, removed])
    ids = [daemon.out("run", "-d", "--name", n, "busybox", "sleep", "300").strip()
           for n in (stopped, killed, removed)]
    try:
        for cid in ids:
            if not freeze_v1(cid):
                pytest.skip("no cgroup v1 freezer hierarchy here")
        wait_until(lambda: all(is_frozen_v1(cid) for cid in ids), what="the freezer to freeze")
        began = time.monotonic()
        daemon.cli("stop", "-t", "1", stopped, timeout=50)
        assert time.monotonic() - began < 6           # it was 11 s and an error
        assert _status(daemon, stopped) == "exited 137"
        began = time.monotonic()
        daemon.cli("kill", killed, timeout=50)
        assert time.monotonic() - began < 5           # it was 10 s, and left running
        assert _status(daemon, killed) == "exited 137"
        daemon.cli("rm", "-f", removed, timeout=50)   # it failed
        assert removed not in daemon.out("ps", "-a", "--format", "{{.Names}}").split()
    finally:
        for cid in ids:
            thaw(cid)
        daemon.cli("rm", "-f", stopped, killed, removed, check=False)


@pytest.mark.timeout(240)
def test_a_container_frozen_but_recorded_running_is_killed_after_a_crash(fresh_daemon):
    """A frozen container recorded running (paused on a full disk, then a live-restore
    restart; frozen behind the daemon's back) at a start without live-restore: killed
    through the runtime, not waited for KILL_WAIT (it took 10.4 s)."""
    d = fresh_daemon()
    cid = d.out("run", "-d", "--name", "pfc", "busybox", "sleep", "300").strip()
    try:
        if not freeze_v1(cid):
            pytest.skip("no cgroup v1 freezer hierarchy here")
        wait_until(lambda: is_frozen_v1(cid), what="the freezer to freeze")
        d.stop(signal.SIGKILL)
        began = time.monotonic()
        d.start(timeout=40)
        assert time.monotonic() - began < 8
        assert _status(d, "pfc") == "exited 137" and _counts(d) == "0 0 1"
        d.cli("start", "pfc")
        assert _status(d, "pfc") == "running 0"
    finally:
        thaw(cid)
        d.cli("rm", "-f", "pfc", check=False)
