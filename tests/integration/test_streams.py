"""Streams that stay open: events, attach to a running container, logs since/until, stats."""
from __future__ import annotations

import json
import os
import subprocess
import time


def _popen(daemon, *args: str) -> subprocess.Popen:
    env = dict(os.environ, DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.base / "cli"))
    return subprocess.Popen(["docker", *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_live_events_stream(daemon):
    # --since now: what happens from here on, whether the stream is already live or not
    since = f"{time.time():.3f}"
    p = _popen(daemon, "events", "--format", "{{json .}}", "--filter", "type=container",
               "--since", since)
    events = []
    try:
        daemon.cli("run", "--rm", "--name", "liveev", "-l", "x=y", "busybox", "true")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:      # read the stream until liveev is gone
            line = p.stdout.readline()
            if not line:
                break
            events.append(json.loads(line))
            if events[-1]["Action"] == "destroy" and \
                    events[-1]["Actor"]["Attributes"].get("name") == "liveev":
                break
    finally:
        p.terminate()
        p.communicate(timeout=10)
    mine = [e for e in events if e["Actor"]["Attributes"].get("name") == "liveev"]
    actions = [e["Action"] for e in mine]
    assert actions[:2] == ["create", "attach"] or actions[0] == "create"
    for a in ("start", "die", "destroy"):
        assert a in actions
    die = next(e for e in mine if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
    assert die["Actor"]["Attributes"]["x"] == "y"
    assert die["Type"] == "container" and die["timeNano"] > 0


def test_attach_to_running_container(daemon):
    daemon.cli("run", "-d", "-i", "--name", "att", "busybox", "sh", "-c",
               "while read line; do echo got:$line; done")
    p = _popen(daemon, "attach", "att")
    try:
        # no wait needed: the CLI sends stdin once it has attached
        p.stdin.write(b"one\n")
        p.stdin.flush()
        deadline = time.time() + 5
        out = b""
        os.set_blocking(p.stdout.fileno(), False)
        while b"got:one" not in out and time.time() < deadline:
            try:
                out += p.stdout.read() or b""
            except BlockingIOError:
                pass
            time.sleep(0.05)
        assert b"got:one" in out
    finally:
        p.kill()
        p.wait()
        daemon.cli("rm", "-f", "att")


def test_logs_since_until(daemon):
    daemon.cli("run", "-d", "--name", "timed", "busybox", "sh", "-c",
               "echo early; sleep 1.2; echo late")
    daemon.cli("wait", "timed")
    lines = daemon.out("logs", "-t", "timed").splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["early", "late"]
    late_ts = lines[1].split()[0]
    assert daemon.out("logs", "--since", late_ts, "timed") == "late\n"
    assert daemon.out("logs", "--until", late_ts[:19] + "Z", "timed") == "early\n"
    daemon.cli("rm", "timed")


def test_prune_and_df(daemon):
    daemon.cli("create", "--name", "prunable", "busybox")
    daemon.cli("run", "-d", "--name", "keeper", "busybox", "sleep", "30")
    try:
        df = daemon.out("system", "df", "--format", "{{.Type}} {{.TotalCount}}")
        assert "Images" in df and "Containers" in df
        out = daemon.out("container", "prune", "-f")
        assert "Total reclaimed space" in out
        names = daemon.out("ps", "-a", "--format", "{{.Names}}").split()
        assert "prunable" not in names and "keeper" in names
    finally:
        daemon.cli("rm", "-f", "keeper")


def test_stats_stream_sdk(sdk):
    c = sdk.containers.run("busybox", "sleep 30", detach=True)
    try:
        it = c.stats(stream=True, decode=True)
        first = next(it)
        second = next(it)
        assert second["precpu_stats"]["cpu_usage"]["total_usage"] == \
            first["cpu_stats"]["cpu_usage"]["total_usage"]
        assert second["pids_stats"]["current"] >= 1
    finally:
        c.remove(force=True)
