"""Delivery modes end to end through the docker CLI: a remote endpoint that stops
reading (syslog over TCP) or goes away (fluentd, retrying) while a container
writes as fast as it can.

blocking (default): the run's spool stays bounded (its conmon is stopped, so the
container's writes block, as dockerd's blocked copier makes them), the daemon and
other containers go on, and stop/rm still work. non-blocking with max-buffer-size:
the container never waits, what does not fit is dropped, nothing piles up."""
from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import Daemon
from logreceivers import Fluentd, StreamServer, Valve
from polling import wait_until
from pydockerd.logdrivers.throttle import HIGH

# 1000-byte lines, as fast as the shell's `yes` writes them
FLOOD = "s=$(head -c 999 /dev/zero | tr '\\0' y); yes $s"
# 20 MB of 1000-byte lines, then the end
BURST = FLOOD + " | head -n 20000; echo the-end"
# over HIGH: the converted head not yet punched out (up to 2 MiB: a blocked step
# holds one read) and what conmon writes before the daemon stops it (`yes` writes
# ~100 MB/s: the inotify wake-up's latency on a loaded machine counts; 18 MB was
# seen with a full test suite and other work on 2 cores). Unbounded growth would
# never let the spool stop growing, which is what the tests wait for first.
SLACK = 32 << 20


def spool_bytes(d: Daemon, cid: str) -> int:
    """What the run's spools hold (the converted head is punched out every MiB)."""
    bundle = Path(d.exec_root, "containers", cid)
    return sum(p.stat().st_blocks * 512 for p in bundle.glob("log-*.spool"))


def conmon_state(cid: str) -> str:
    """The process state letter of the container's conmon (T when stopped)."""
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"conmon" in stat.read_bytes() and cid.encode() in stat.read_bytes():
                return (stat.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
    return ""


def stuck(read: Callable[[], int]) -> Callable[[], bool]:
    """A probe for wait_until: read() gave the same value as at the last call."""
    last: list[int] = []

    def probe() -> bool:
        value = read()
        same = last == [value]
        last[:] = [value]
        return same
    return probe


@pytest.mark.parametrize("endpoint", ["stalled-syslog", "dead-fluentd"])
def test_blocking_mode_bounds_the_spool_and_blocks_only_the_writer(daemon: Daemon,
                                                                   endpoint: str) -> None:
    name = f"ld-block-{endpoint}"
    if endpoint == "stalled-syslog":
        server: StreamServer = StreamServer()            # accepts, never reads
        opts = ["--log-driver", "syslog", "--log-opt",
                f"syslog-address=tcp://127.0.0.1:{server.port}"]
    else:
        server = Fluentd()
        opts = ["--log-driver", "fluentd", "--log-opt",
                f"fluentd-address=127.0.0.1:{server.port}"]
    try:
        cid = daemon.out("run", "-d", "--name", name, *opts, "busybox",
                         "sh", "-c", FLOOD).strip()
        if endpoint == "dead-fluentd":
            wait_until(lambda: spool_bytes(daemon, cid) > 0, 30, what="first output")
            server.close()                       # the driver retries (blocks), as dockerd's
        wait_until(lambda: conmon_state(cid) == "T", 60, what="conmon stopped")
        # the writer is held: its spool stops growing, near the bound
        wait_until(stuck(lambda: spool_bytes(daemon, cid)), 30, interval=1.0,
                   what="the spool no longer growing")
        assert HIGH <= spool_bytes(daemon, cid) <= HIGH + SLACK
        assert daemon.inspect(name)["State"]["Status"] == "running"
        # the daemon and the other containers go on
        t0 = time.monotonic()
        daemon.cli("run", "--name", name + "-other", "busybox", "sh", "-c",
                   "i=0; while [ $i -lt 300 ]; do echo n$i; i=$((i+1)); done")
        assert daemon.out("logs", name + "-other").split() == [f"n{i}" for i in range(300)]
        daemon.cli("ps")
        assert time.monotonic() - t0 < 30
        assert HIGH <= spool_bytes(daemon, cid) <= HIGH + SLACK
        # stop still works: conmon continues to reap the process and record the exit
        t0 = time.monotonic()
        daemon.cli("stop", "-t", "1", name, timeout=60)
        assert time.monotonic() - t0 < 20
        state = daemon.inspect(name)["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 137
    finally:
        daemon.cli("rm", "-f", name, name + "-other", check=False)
        server.close()


def test_non_blocking_mode_drops_instead_of_blocking_or_growing(daemon: Daemon) -> None:
    server = StreamServer()                      # accepts, never reads
    name = "ld-nonblock"
    try:
        t0 = time.monotonic()
        cid = daemon.out("run", "-d", "--name", name, "--log-driver", "syslog",
                         "--log-opt", f"syslog-address=tcp://127.0.0.1:{server.port}",
                         "--log-opt", "mode=non-blocking", "--log-opt", "max-buffer-size=64k",
                         "busybox", "sh", "-c", BURST).strip()
        assert daemon.out("wait", name, timeout=120).strip() == "0"
        assert time.monotonic() - t0 < 60          # 20 MB against a peer that never reads
        # everything was taken from the spool (sent, queued or dropped): nothing waits
        wait_until(lambda: spool_bytes(daemon, cid) == 0, 30, what="the spool consumed")
        assert conmon_state(cid) == ""
        # the dual-logging cache has every line, the remote end got what fitted
        r = daemon.cli("logs", "--tail", "1", name)
        assert r.stdout.strip() == b"the-end"
    finally:
        daemon.cli("rm", "-f", name, check=False)
        server.close()


def test_blocking_mode_goes_on_when_the_endpoint_reads_again_and_loses_nothing(
        daemon: Daemon) -> None:
    server = Valve()                             # stalls until opened
    name = "ld-valve"
    try:
        cid = daemon.out("run", "-d", "--name", name, "--log-driver", "syslog",
                         "--log-opt", f"syslog-address=tcp://127.0.0.1:{server.port}",
                         "busybox", "sh", "-c", BURST).strip()
        wait_until(lambda: conmon_state(cid) == "T", 60, what="conmon stopped")
        assert spool_bytes(daemon, cid) <= HIGH + SLACK
        server.open()
        assert daemon.out("wait", name, timeout=120).strip() == "0"
        got = wait_until(lambda: (lambda d: d if b"the-end" in d else None)(server.data()),
                         60, what="the last line at the receiver")
        assert got.count(b"y" * 999 + b"\n") == 20_000 and got.count(b"\n") == 20_001
    finally:
        daemon.cli("rm", "-f", name, check=False)
        server.close()


@pytest.mark.parametrize("live_restore", [True, False])
def test_a_daemon_killed_while_conmon_is_stopped_continues_it(fresh_daemon,
                                                              live_restore: bool) -> None:
    server = Valve()
    try:
        d = fresh_daemon(*(["--live-restore"] if live_restore else []))
        cid = d.out("run", "-d", "--name", "ld-crash", "--log-driver", "syslog", "--log-opt",
                    f"syslog-address=tcp://127.0.0.1:{server.port}", "busybox",
                    "sh", "-c", BURST).strip()
        wait_until(lambda: conmon_state(cid) == "T", 60, what="conmon stopped")
        d.stop(signal.SIGKILL)
        assert conmon_state(cid) == "T"
        server.open()
        d.start()
        if live_restore:
            # followed again: conmon continues, the run goes on to its end
            assert d.out("wait", "ld-crash", timeout=120).strip() == "0"
            wait_until(lambda: b"the-end" in server.data(), 60, what="the last line")
        else:
            # the start killed it; its conmon (continued) recorded the exit
            state = d.inspect("ld-crash")["State"]
            assert state["Status"] == "exited" and state["ExitCode"] == 137
        assert conmon_state(cid) == ""
    finally:
        server.close()
