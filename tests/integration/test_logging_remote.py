"""The remote log drivers end to end: `docker run --log-driver syslog|journald|gelf|
fluentd` against a running pydockerd, with real receivers (rsyslogd, a private
systemd-journald, GELF and fluentd receivers decoding the wire formats); `docker
logs` through dockerd's dual-logging cache and through the journal; a start that
fails when the endpoint is down; a dead endpoint that blocks no one else; nothing
lost across a live-restore."""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Daemon, cleanup_daemon, make_daemon
from logreceivers import (Fluentd, GelfUdp, Journald, Rsyslog, StreamServer, free_port,
                          journal, rsyslog)
from polling import wait_until
from pydockerd.logdrivers.throttle import HIGH

__all__ = ["journal", "rsyslog"]          # fixtures (logreceivers.py)

COUNT_SCRIPT = "i=0; while [ $i -lt {n} ]; do echo n$i; echo e$i >&2; i=$((i+1)); done"


def numbers(text: str, prefix: str = "n") -> list[int]:
    return [int(w[len(prefix):]) for w in text.split() if w.startswith(prefix)
            and w[len(prefix):].isdigit()]


def syslog_texts(r: Rsyslog, tag: str) -> list[str]:
    """The message part of each of rsyslog's lines with `tag`."""
    return [line.rsplit("|", 1)[-1].strip() for line in r.lines() if tag in line]


def run(d: Daemon, name: str, *args: str, check: bool = True):
    return d.cli("run", "--name", name, *args, check=check, timeout=120)


def test_syslog_end_to_end_and_logs_from_the_cache(daemon: Daemon, rsyslog: Rsyslog) -> None:
    name = "lr-syslog"
    try:
        run(daemon, name, "--log-driver", "syslog", "--log-opt",
            f"syslog-address=tcp://127.0.0.1:{rsyslog.tcp}", "--log-opt", "tag=lrs-{{.Name}}",
            "busybox", "sh", "-c", COUNT_SCRIPT.format(n=200))
        wait_until(lambda: len(syslog_texts(rsyslog, "lrs-" + name)) >= 400, 30,
                   what="400 lines at rsyslog")
        texts = syslog_texts(rsyslog, "lrs-" + name)
        assert numbers(" ".join(texts)) == list(range(200))
        assert numbers(" ".join(texts), "e") == list(range(200))
        inspect = daemon.inspect(name)
        assert inspect["LogPath"] == ""
        assert inspect["HostConfig"]["LogConfig"]["Type"] == "syslog"
        # dual logging: `docker logs` reads the local cache, with both streams
        r = daemon.cli("logs", name)
        assert numbers(r.stdout.decode()) == list(range(200))
        assert numbers(r.stderr.decode(), "e") == list(range(200))
        r = daemon.cli("logs", "--tail", "3", name)      # the last 3 of both streams
        tail = r.stdout.split() + r.stderr.split()
        assert len(tail) == 3 and {b"n199", b"e199"} & set(tail)
        cache = Path(daemon.data_root, "containers", inspect["Id"], "container-cached.log")
        assert cache.stat().st_size > 0
    finally:
        daemon.cli("rm", "-f", name, check=False)


def test_gelf_and_fluentd_end_to_end(daemon: Daemon, tmp_path: Path) -> None:
    gelf = GelfUdp()
    fluent = Fluentd(str(tmp_path / "fluent.sock"))
    try:
        run(daemon, "lr-gelf", "--log-driver", "gelf", "--log-opt",
            f"gelf-address=udp://127.0.0.1:{gelf.port}", "--label", "team=core",
            "--log-opt", "labels=team", "busybox", "sh", "-c", "echo hello gelf; echo bad >&2")
        got = sorted((gelf.receive()[0] for _ in range(2)), key=lambda m: m["level"])
        cid = daemon.inspect("lr-gelf")["Id"]
        assert [(m["short_message"], m["level"]) for m in got] == [("bad", 3),
                                                                   ("hello gelf", 6)]
        assert got[0]["_container_id"] == cid and got[0]["_container_name"] == "lr-gelf"
        assert got[0]["_team"] == "core" and got[0]["_image_name"] == "busybox"
        created = daemon.inspect("lr-gelf")["Created"]          # RFC3339Nano, zeros trimmed
        assert got[0]["_created"] == created[:-1].rstrip("0").rstrip(".") + "Z"
        assert daemon.out("logs", "lr-gelf") == "hello gelf\n"

        run(daemon, "lr-fluent", "--log-driver", "fluentd", "--log-opt",
            f"fluentd-address=unix://{tmp_path}/fluent.sock", "--log-opt", "tag=app.{{.Name}}",
            "busybox", "sh", "-c", COUNT_SCRIPT.format(n=50))
        wait_until(lambda: len(fluent.messages) >= 100, 30, what="fluentd messages")
        tags = {m[0] for m in fluent.messages}
        assert tags == {"app.lr-fluent"}
        out = [m[2]["log"] for m in fluent.messages if m[2]["source"] == "stdout"]
        assert numbers(" ".join(out)) == list(range(50))
        assert numbers(daemon.out("logs", "lr-fluent")) == list(range(50))

        # cache-disabled: nothing to read back, dockerd's error
        run(daemon, "lr-nocache", "--log-driver", "fluentd", "--log-opt",
            f"fluentd-address=unix://{tmp_path}/fluent.sock", "--log-opt", "cache-disabled=true",
            "busybox", "echo", "x")
        r = daemon.cli("logs", "lr-nocache", check=False)
        assert r.returncode != 0
        assert "configured logging driver does not support reading" in r.stderr_text
        assert not Path(daemon.data_root, "containers", daemon.inspect("lr-nocache")["Id"],
                        "container-cached.log").exists()
    finally:
        for n in ("lr-gelf", "lr-fluent", "lr-nocache"):
            daemon.cli("rm", "-f", n, check=False)
        gelf.close()
        fluent.close()


def test_start_fails_when_the_endpoint_is_down(daemon: Daemon) -> None:
    port = free_port()
    name = "lr-down"
    try:
        r = run(daemon, name, "--log-driver", "syslog", "--log-opt",
                f"syslog-address=tcp://127.0.0.1:{port}", "busybox", "echo", "x", check=False)
        message = (f"failed to initialize logging driver: dial tcp 127.0.0.1:{port}: "
                   "connect: connection refused")
        assert r.returncode == 125 and message in r.stderr_text, r.stderr_text
        state = daemon.inspect(name)["State"]
        assert (state["Status"], state["ExitCode"], state["Error"]) == ("created", 128, message)
        r = daemon.cli("start", name, check=False)
        assert r.returncode != 0 and message in r.stderr_text
    finally:
        daemon.cli("rm", "-f", name, check=False)


@pytest.fixture
def journald_daemon(images_dir: Path, journal: Journald) -> Iterator[tuple[Daemon, Journald]]:
    """A pydockerd in the private journald's mount namespace: for it the journal is the
    machine's (its socket and the files `journalctl` reads)."""
    tmp = Path(tempfile.mkdtemp(prefix="pdt-", dir="/tmp"))
    d = make_daemon(tmp)
    d.prefix = ["nsenter", f"--mount={journal.mount_ns}", "--"]
    try:
        d.start()
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        yield d, journal
    finally:
        cleanup_daemon(d)
        shutil.rmtree(tmp, ignore_errors=True)


def test_journald_end_to_end_and_logs_from_the_journal(
        journald_daemon: tuple[Daemon, Journald]) -> None:
    d, journal = journald_daemon
    run(d, "lr-journal", "--log-driver", "journald", "--log-opt", "tag={{.Name}}/x",
        "busybox", "sh", "-c", COUNT_SCRIPT.format(n=100))
    cid = d.inspect("lr-journal")["Id"]
    recs = wait_until(lambda: (lambda r: r if len(r) >= 200 else None)(
        journal.records(f"CONTAINER_ID_FULL={cid}")), 30, what="journal records")
    first = recs[0]
    assert (first["MESSAGE"], first["PRIORITY"], first["CONTAINER_NAME"]) == ("n0", "6",
                                                                              "lr-journal")
    assert first["CONTAINER_TAG"] == first["SYSLOG_IDENTIFIER"] == "lr-journal/x"
    assert d.inspect("lr-journal")["LogPath"] == ""
    r = d.cli("logs", "lr-journal")
    assert numbers(r.stdout.decode()) == list(range(100))
    assert numbers(r.stderr.decode(), "e") == list(range(100))
    r = d.cli("logs", "--tail", "2", "lr-journal")      # the last 2 of both streams
    tail = r.stdout.split() + r.stderr.split()
    assert len(tail) == 2 and {b"n99", b"e99"} & set(tail)
    # follow ends when the container has stopped and its lines are all there
    d.cli("create", "--name", "lr-jf", "--log-driver", "journald", "busybox", "sh", "-c",
          "sleep 1; " + COUNT_SCRIPT.format(n=30))
    d.cli("start", "lr-jf")
    follow = d.cli("logs", "-f", "lr-jf", timeout=60)
    assert numbers(follow.stdout.decode()) == list(range(30))


def _writer(d: Daemon, name: str, address: str) -> None:
    """8 MB of output, then quiet."""
    d.cli("run", "-d", "--name", name, "--log-driver", "syslog", "--log-opt",
          f"syslog-address={address}", "busybox", "sh", "-c",
          "i=0; while [ $i -lt 8000 ]; do echo " + "y" * 1000 + "; i=$((i+1)); done; "
          "sleep 1000")


def test_a_dead_endpoint_blocks_neither_the_daemon_nor_other_containers(daemon: Daemon) -> None:
    stalled = StreamServer()                      # accepts, never reads
    names = [f"lr-stall{i}" for i in range(8)]    # more than the default thread pool
    try:
        for n in names:
            _writer(daemon, n, f"tcp://127.0.0.1:{stalled.port}")
        bundles = [Path(daemon.exec_root, "containers", daemon.inspect(n)["Id"])
                   for n in names]

        def spool_bytes(bundle: Path) -> int:
            return sum(p.stat().st_size for p in bundle.glob("log-*.spool"))
        # (blocking mode bounds a spool: its conmon is stopped past HIGH, throttle.py)
        wait_until(lambda: all(spool_bytes(b) >= HIGH for b in bundles), 120,
                   what="every writer held")
        t0 = time.monotonic()
        run(daemon, "lr-other", "busybox", "sh", "-c", COUNT_SCRIPT.format(n=300))
        assert numbers(daemon.out("logs", "lr-other")) == list(range(300))
        daemon.cli("ps")
        assert time.monotonic() - t0 < 30
        # the writers' tailers are stuck in send: the rest of their output waits
        for b in bundles:
            cursor = json.loads((b / "log.cursor").read_text())
            assert cursor["offset"] < spool_bytes(b) - (1 << 20)
        t0 = time.monotonic()                     # removal interrupts the blocked sends
        daemon.cli("rm", "-f", *names)
        assert time.monotonic() - t0 < 20
    finally:
        daemon.cli("rm", "-f", "lr-other", *names, check=False)
        stalled.close()


def test_lines_written_while_the_daemon_is_down_arrive_after(fresh_daemon, tmp_path: Path
                                                             ) -> None:
    r = Rsyslog(tmp_path)
    try:
        d = fresh_daemon("--live-restore")
        d.cli("run", "-d", "--name", "lr-live", "--log-driver", "syslog", "--log-opt",
              f"syslog-address=tcp://127.0.0.1:{r.tcp}", "--log-opt", "tag=lrlive",
              "busybox", "sh", "-c",
              "i=0; while [ $i -lt 1500 ]; do echo n$i; i=$((i+1)); "
              "[ $((i % 100)) = 0 ] && sleep 0.2; done")
        wait_until(lambda: len(syslog_texts(r, "lrlive")) > 100, 30, what="first lines")
        d.stop(signal.SIGTERM)
        before = len(syslog_texts(r, "lrlive"))
        cid = next(p.name for p in Path(d.exec_root, "containers").iterdir())
        bundle = Path(d.exec_root, "containers", cid)
        size = sum(p.stat().st_size for p in bundle.glob("log-*.spool"))
        wait_until(lambda: sum(p.stat().st_size for p in bundle.glob("log-*.spool")) > size
                   + 1000, 30, what="output while the daemon is down")
        d.start()
        wait_until(lambda: d.out("inspect", "-f", "{{.State.Status}}", "lr-live").strip()
                   == "exited", 60, what="exit")
        got = wait_until(lambda: (lambda t: t if len(set(numbers(" ".join(t)))) >= 1500
                                  else None)(syslog_texts(r, "lrlive")), 30,
                         what="every line at rsyslog")
        nums = numbers(" ".join(got))
        assert list(dict.fromkeys(nums)) == list(range(1500))   # none lost, in order
        assert before < 1500
        assert numbers(d.out("logs", "lr-live")) == list(range(1500))   # the cache: exactly once
        assert os.path.exists(r.out)
    finally:
        r.stop()
