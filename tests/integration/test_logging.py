"""Log drivers end to end through the docker CLI: dockerd's json-file bytes, 16 KiB
partial lines, rotation names, `docker logs` across rotated and compressed files,
`logs -f` through rotations, no line lost or repeated across daemon restarts with
--live-restore, local, none, daemon defaults and create-time validation."""
from __future__ import annotations

import glob
import gzip
import json
import os
import re
import signal
import time

import pytest

from polling import wait_until

# one json-file line, exactly: keys in dockerd's order, RFC3339Nano UTC time
_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,8}[1-9]|\.[1-9])?Z"
_LINE = re.compile(r'\{"log":"(?:[^"\\]|\\["\\nr]|\\u[0-9a-f]{4})*","stream":"(stdout|stderr)"'
                   r'(,"attrs":\{[^{}]*\})?,"time":"' + _TIME + r'"\}')


def _records(path: str) -> list[dict]:
    out = []
    for raw in open(path, "rb").read().split(b"\n")[:-1]:
        assert _LINE.fullmatch(raw.decode()), raw[:200]
        out.append(json.loads(raw))
    return out


def _log_file(d, ref: str) -> str:
    return d.out("inspect", "-f", "{{.LogPath}}", ref).strip()


def _numbers(text: str) -> list[int]:
    return [int(w[1:]) for w in text.split() if w.startswith("n")]


def test_json_file_is_dockerds_format(daemon):
    name = "logfmt"
    script = (r"printf 'a\tb<>&\001\177 \342\200\250 x\\y\"q\r\n\377\342\202 z\n'; "
              r"printf 'err\n' >&2; head -c 40000 /dev/zero | tr '\0' x; echo; printf 'nonl'")
    try:
        assert daemon.out("create", "--name", name, "--label", "team=a", "--log-opt",
                          "labels=team", "-e", "E=1", "--log-opt", "env=E", "--log-opt",
                          "tag={{.Name}}", "busybox", "sh", "-c", script).strip()
        assert _log_file(daemon, name) == ""          # dockerd sets LogPath at start
        daemon.cli("start", "-a", name)
        path = _log_file(daemon, name)
        cid = daemon.inspect(name)["Id"]
        assert path == os.path.join(daemon.data_root, "containers", cid, f"{cid}-json.log")
        recs = wait_until(lambda: len(_records(path)) >= 7 and _records(path), what="7 lines")
        attrs = {"E": "1", "team": "a", "tag": name}
        assert all(r["attrs"] == attrs for r in recs)
        out = [r for r in recs if r["stream"] == "stdout"]
        assert [r["log"] for r in out[:2]] == ["a\tb<>&\x01\x7f \u2028 x\\y\\\"q\r\n",
                                               "\ufffd\ufffd\ufffd z\n"]
        raw = open(path, "rb").read()
        assert b'"log":"a\\u0009b\\u003c\\u003e\\u0026\\u0001\x7f \\u2028 x\\\\y' in raw
        # 40000 x + newline: two 16 KiB partial messages and the rest, one timestamp
        big = out[2:5]
        assert [len(r["log"]) for r in big] == [16384, 16384, 40000 - 32768 + 1]
        assert big[0]["time"] == big[1]["time"] == big[2]["time"]
        assert out[5]["log"] == "nonl"
        assert [r["log"] for r in recs if r["stream"] == "stderr"] == ["err\n"]
        logs = daemon.cli("logs", name)
        assert logs.stdout.endswith(b"x" * 100 + b"\nnonl") and logs.stderr == b"err\n"
        stamped = daemon.out("logs", "-t", name).splitlines()[0]
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z a\tb", stamped)
        details = daemon.out("logs", "--details", name).splitlines()[0]
        assert details.startswith(f"E=1,tag={name},team=a a\tb")
    finally:
        daemon.cli("rm", "-f", name, check=False)


def test_rotation_names_and_logs_across_compressed_files(daemon):
    name = "logrot"
    try:
        daemon.cli("run", "--name", name, "--log-opt", "max-size=10k", "--log-opt",
                   "max-file=3", "--log-opt", "compress=true", "busybox", "sh", "-c",
                   "i=0; while [ $i -lt 2000 ]; do echo n$i; i=$((i+1)); done")
        path = _log_file(daemon, name)
        wait_until(lambda: os.path.exists(path + ".2.gz") and not os.path.exists(path + ".1"),
                   what="rotated files")
        assert sorted(os.path.basename(p)[65:] for p in glob.glob(path + "*")) == \
            ["json.log", "json.log.1.gz", "json.log.2.gz"]
        kept = [json.loads(ln) for f in (path + ".2.gz", path + ".1.gz")
                for ln in gzip.open(f).read().splitlines()] + _records(path)
        nums = [int(r["log"][1:]) for r in kept]
        assert nums == list(range(nums[0], 2000)) and nums[0] > 0
        for f in (path + ".2.gz", path + ".1.gz"):
            assert 10000 <= len(gzip.open(f).read()) < 10000 + 100    # dockerd: 10k = 10,000
        assert _numbers(daemon.out("logs", name)) == nums
        assert _numbers(daemon.out("logs", "--tail", "3", name)) == [1997, 1998, 1999]
        n = len(nums) - 10
        assert _numbers(daemon.out("logs", "--tail", str(n), name)) == nums[-n:]
    finally:
        daemon.cli("rm", "-f", name, check=False)


def test_follow_through_rotations_loses_and_repeats_nothing(daemon):
    name = "logfollow"
    try:
        daemon.cli("create", "--name", name, "--log-opt", "max-size=4k", "--log-opt",
                   "max-file=2", "busybox", "sh", "-c",
                   "sleep 0.5; i=0; while [ $i -lt 3000 ]; do echo n$i; i=$((i+1)); done")
        daemon.cli("start", name)
        follow = daemon.cli("logs", "-f", name, timeout=120)
        assert _numbers(follow.stdout.decode()) == list(range(3000))
    finally:
        daemon.cli("rm", "-f", name, check=False)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_lines_written_while_the_daemon_is_away_are_kept(fresh_daemon, sig):
    d = fresh_daemon("--live-restore")
    d.cli("run", "-d", "--name", "writer", "--log-opt", "max-size=8k", "--log-opt",
          "max-file=50", "busybox", "sh", "-c",
          "i=0; while [ $i -lt 1500 ]; do echo n$i; echo e$i >&2; i=$((i+1)); "
          "[ $((i % 100)) = 0 ] && sleep 0.2; done")
    wait_until(lambda: len(_numbers(d.out("logs", "writer"))) > 100, what="output")
    d.stop(sig)
    time.sleep(1.5)                      # it keeps writing while no daemon runs
    d.start()
    wait_until(lambda: d.out("inspect", "-f", "{{.State.Status}}", "writer").strip()
               == "exited", timeout=60, what="exit")
    r = d.cli("logs", "writer")
    assert _numbers(r.stdout.decode()) == list(range(1500))
    assert [int(w[1:]) for w in r.stderr.decode().split()] == list(range(1500))


def test_log_driver_none_and_local(daemon):
    try:
        daemon.cli("run", "--name", "lognone", "--log-driver", "none", "busybox", "echo", "hi")
        r = daemon.cli("logs", "lognone", check=False)
        assert r.returncode != 0 and b"does not support reading" in r.stderr
        assert daemon.inspect("lognone")["LogPath"] == ""
        daemon.cli("run", "--name", "loglocal", "--log-driver", "local", "busybox", "sh", "-c",
                   "echo one; echo two >&2; printf three")
        doc = daemon.inspect("loglocal")
        assert doc["LogPath"] == "" and doc["HostConfig"]["LogConfig"] == \
            {"Type": "local", "Config": {}}
        f = os.path.join(daemon.data_root, "containers", doc["Id"], "local-logs",
                         "container.log")
        wait_until(lambda: os.path.exists(f) and os.path.getsize(f) > 0, what="local file")
        r = daemon.cli("logs", "loglocal")
        assert r.stdout == b"one\nthree" and r.stderr == b"two\n"
        assert daemon.out("logs", "--tail", "1", "loglocal") == "three"
    finally:
        daemon.cli("rm", "-f", "lognone", "loglocal", check=False)


def test_validation_errors_at_create(daemon):
    for args, message in [
            (["--log-driver", "bogus"], 'error looking up logging plugin bogus'),
            (["--log-opt", "foo=bar"], "unknown log opt 'foo' for json-file log driver"),
            (["--log-opt", "max-size=abc"], "invalid size: 'abc'"),
            (["--log-opt", "max-file=x"], 'strconv.Atoi: parsing "x": invalid syntax'),
            (["--log-opt", "compress=true"], "compress cannot be true when max-file"),
            (["--log-driver", "local", "--log-opt", "labels=x"],
             "unknown log opt 'labels' for log driver local"),
            (["--log-opt", "mode=bad"], "logger: logging mode not supported: bad"),
            (["--log-driver", "awslogs"], "awslogs log driver needs a cloud service"),
            (["--log-driver", "splunk"], "splunk log driver needs a cloud service"),
            (["--log-driver", "syslog", "--log-opt", "syslog-facility=x"],
             "invalid syslog facility"),
            (["--log-driver", "gelf"], "gelf-address is a required parameter"),
            (["--log-driver", "fluentd", "--log-opt", "foo=1"],
             "unknown log opt 'foo' for fluentd log driver"),
            (["--log-driver", "syslog", "--log-opt", "cache-disabled=maybe"],
             "invalid value for option cache-disabled: maybe")]:
        before = daemon.out("ps", "-aq")
        r = daemon.cli("create", *args, "busybox", "true", check=False)
        assert r.returncode != 0 and message in r.stderr_text, (args, r.stderr_text)
        assert daemon.out("ps", "-aq") == before


def test_daemon_defaults(fresh_daemon):
    d = fresh_daemon("--log-opt", "max-size=1m", "--log-opt", "labels=a")
    info = json.loads(d.out("info", "--format", "{{json .}}"))
    assert info["LoggingDriver"] == "json-file"
    assert info["Plugins"]["Log"] == ["fluentd", "gelf", "journald", "json-file", "local",
                                      "syslog"]
    d.cli("create", "--name", "dflt", "--log-opt", "max-file=2", "busybox", "true")
    d.cli("create", "--name", "other", "--log-driver", "local", "busybox", "true")
    assert d.inspect("dflt")["HostConfig"]["LogConfig"] == \
        {"Type": "json-file", "Config": {"labels": "a", "max-file": "2", "max-size": "1m"}}
    assert d.inspect("other")["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}}
    d.stop()
    d.extra_args = []                   # a flag and daemon.json may not both set it
    with open(d.base / "daemon.json", "w") as f:
        json.dump({"log-driver": "local", "log-opts": {"max-size": "5m"}}, f)
    d.start()
    assert d.out("info", "--format", "{{.LoggingDriver}}").strip() == "local"
    d.cli("run", "--name", "loc", "busybox", "echo", "from-local")
    assert d.inspect("loc")["HostConfig"]["LogConfig"] == \
        {"Type": "local", "Config": {"max-size": "5m"}}
    assert d.out("logs", "loc") == "from-local\n"
